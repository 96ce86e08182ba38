"""The parts of `ftkit augment` one by one: targets, the teacher's bad answers over real HTTP, each filter, the
candidates log after a cut line, the review sheet's read-back, and the source counts' rules."""
from __future__ import annotations

import csv
import io
import json
import time

import pytest

from ftkit.augmentation import filters, prompts, targets
from ftkit.augmentation.teacher import HttpTeacher, TeacherError
from ftkit.data.record_checks import TaskContext

SYSTEM = "Classify the ticket."
TASK = TaskContext("structured_output", "category", (), {"type": "object", "required": ["category"]})
LABELS = ("billing", "shipping", "account")


def rec(i: int, text: str, label: str = "billing") -> dict:
    return {"id": f"r{i}", "label": label, "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": text},
        {"role": "assistant", "content": json.dumps({"category": label})}]}


TRAIN = [rec(0, "I was charged twice for my tent order and need the second charge refunded today please"),
         rec(1, "My parcel with the hiking boots never arrived although tracking says delivered", "shipping"),
         rec(2, "I cannot log in to my account since the password reset email never came", "account")]
TEST = [rec(9, "The invoice for my kayak paddle shows the wrong amount and the wrong VAT number")]


def cand(cid: str, item, target: str = "billing") -> dict:
    return {"cid": cid, "call": 0, "target": target, "seed": 0, "prompt_sha256": "x", "item": item}


def run_filters(items: list, target_kind: str = "label") -> filters.Filtered:
    cands = [cand(f"c{i}", item) for i, item in enumerate(items)]
    return filters.filter_candidates(cands, TRAIN, TEST, TASK, LABELS, SYSTEM, 0.85,
                                     {"billing": {"kind": target_kind, "name": "billing", "label": "billing"}})


GOOD = {"input": "Why was my gift card charged a service fee on the statement this month", "answer": {"category": "billing"}}


@pytest.mark.parametrize("item, reason", [
    ({"input": "", "answer": "x"}, "shape"),
    ("just text", "shape"),
    ({"input": "Refund for the stove please, charged in error", "answer": "not json"}, "record_check"),
    ({"input": "Refund for the stove please, charged in error", "answer": {"category": "weather"}}, "label_unknown"),
    ({"input": "Mail me at jane.doe@example.com about the stove charge", "answer": {"category": "billing"}}, "pii"),
    ({"input": TEST[0]["messages"][1]["content"], "answer": {"category": "billing"}}, "test_leak"),
    ({"input": "The invoice for my kayak paddle shows the wrong amount and the wrong VAT number!",
      "answer": {"category": "billing"}}, "test_leak"),  # a near copy of the test example
    ({"input": TRAIN[0]["messages"][1]["content"], "answer": {"category": "billing"}}, "duplicate_train"),
    ({"input": "Hi, I was charged twice for my tent order and need the second charge refunded today please",
      "answer": {"category": "billing"}}, "near_duplicate_train"),
    ({"input": "Where is my parcel with the camp stove, it is a week late", "answer": {"category": "shipping"}},
     "off_target"),
])
def test_each_filter_rejects_its_case_and_a_good_candidate_passes(item, reason):
    result = run_filters([item, GOOD])
    assert [r["reason"] for r in result.rejected] == [reason]
    assert [c["cid"] for c in result.kept] == ["c1"] and result.counts()[reason] == 1


def test_candidates_are_deduplicated_among_themselves_keeping_the_first():
    near = {**GOOD, "input": GOOD["input"] + "!"}
    result = run_filters([GOOD, dict(GOOD), near])
    assert [c["cid"] for c in result.kept] == ["c0"]
    assert [r["reason"] for r in result.rejected] == ["duplicate_candidate", "near_duplicate_candidate"]


def test_a_slice_target_takes_any_label():
    other = {"input": "Where is my parcel with the camp stove, it is a week late", "answer": {"category": "shipping"}}
    assert len(run_filters([other], target_kind="slice").kept) == 1


def test_targets_are_labels_below_the_minimum_slices_too_and_the_whole_set_when_not_yet():
    train = [{"label": "a", "fields": {"channel": "mail"}}] * 3 + [{"label": "b", "fields": {"channel": "chat"}}] * 2
    names = [t.name for t in targets.choose_targets(train, ("a", "b"), ["channel"], 3, 5)]
    assert names == ["b", "channel=chat"]  # 3 is not below 3; 2 is
    assert [t.name for t in targets.choose_targets(train, ("a", "b"), [], 2, 5)] == []
    [whole] = targets.choose_targets(train, ("a", "b"), [], 3, 5, not_yet=True, whole_set=40)
    assert (whole.kind, whole.want) == ("all", 40)


def test_shots_come_from_the_given_split_target_first():
    import random

    target = targets.Target("label", "account", 1, 5, label="account")
    shots = targets.pick_shots(TRAIN, target, 2, random.Random(0))
    assert shots[0]["id"] == "r2" and len(shots) == 2
    request = prompts.build_request(target, shots, 4, "structured_output", SYSTEM, LABELS, "category")
    assert "Write 4 new examples" in request[1]["content"] and TEST[0]["messages"][1]["content"] not in request[1]["content"]


@pytest.mark.parametrize("text, problem", [("", "teacher.empty"), ("   \n", "teacher.empty"),
                                           ("I cannot help with creating that.", "teacher.refusal"),
                                           ("As an AI, I must decline.", "teacher.refusal"),
                                           ("Sure! Input: hello, answer: billing", "teacher.not_json"),
                                           ('{"input": "a", "answer": "b"}\n{"input": "c", "answer": "d"}', "")])
def test_teacher_answers_are_parsed_or_named(text, problem):
    items, got = prompts.parse_candidates(text)
    assert got == problem and (len(items) == 2 if not problem else items == [])


def test_http_teacher_honours_retry_after_sends_the_key_and_gives_up_after_the_bound(fixed_teacher, monkeypatch):
    ok = {"content": "[]"}
    server = fixed_teacher([{"status": 429, "headers": {"Retry-After": "1"}}, ok], api_key="k-1")
    monkeypatch.setenv("T_KEY", "k-1")
    teacher = HttpTeacher(server.base_url, "m", "T_KEY", backoff_s=0.0)
    reply = teacher.chat([{"role": "user", "content": "hi"}], 32, 0.7, 0.9, 3)
    assert reply.retries == 1 and reply.text == "[]" and reply.prompt_tokens == 100
    assert server.requests[1]["time"] - server.requests[0]["time"] >= 0.9  # waited what Retry-After said
    assert server.requests[0]["authorization"] == "Bearer k-1" and server.requests[0]["body"]["seed"] == 3

    down = fixed_teacher([{"status": 500}])
    with pytest.raises(TeacherError) as err:
        HttpTeacher(down.base_url, "m", max_retries=2, backoff_s=0.01).chat([], 8, 0, 1, 0)
    assert err.value.code == "teacher.gave_up" and not err.value.fatal and len(down.requests) == 3
    assert "continues where it stopped" in str(err.value)


def test_http_teacher_refused_key_and_non_json_are_clear(fixed_teacher, monkeypatch):
    locked = fixed_teacher([{"content": "[]"}], api_key="right")
    monkeypatch.setenv("T_KEY", "wrong")
    with pytest.raises(TeacherError) as err:
        HttpTeacher(locked.base_url, "m", "T_KEY").chat([], 8, 0, 1, 0)
    assert err.value.fatal and "T_KEY" in str(err.value) and "wrong" not in str(err.value)
    html = fixed_teacher([{"raw": "<html>not an API</html>"}])
    with pytest.raises(TeacherError) as err:
        HttpTeacher(html.base_url, "m").chat([], 8, 0, 1, 0)
    assert err.value.code == "teacher.not_json" and "/v1" in str(err.value)


def test_retry_after_as_an_http_date_is_capped():
    from email.utils import formatdate

    from ftkit.augmentation.teacher import MAX_RETRY_AFTER_S, retry_after_seconds

    now = time.time()
    assert retry_after_seconds(formatdate(now + 5, usegmt=True), now) == pytest.approx(5, abs=1)
    assert retry_after_seconds(formatdate(now + 3600, usegmt=True), now) == MAX_RETRY_AFTER_S


def test_candidate_log_drops_a_line_cut_by_a_kill_and_continues(tmp_path):
    from ftkit.augmentation.candidates import CandidateLog

    path = tmp_path / "candidates.jsonl"
    log = CandidateLog.create(path, {"a": 1})
    log.add_call({"call": 0, "target": "t", "seed": 0, "prompt_sha256": "p", "items": [{"input": "x"}]})
    with open(path, "a") as handle:
        handle.write('{"kind": "call", "call": 1, "ite')  # the kill came mid-line
    again = CandidateLog.open(path)
    assert again.next_call == 1 and again.complete is None and len(again.candidates()) == 1
    assert path.read_text().endswith("\n")
    with pytest.raises(FileExistsError):
        CandidateLog.create(path, {"a": 1})


def _sheet(tmp_path, n: int = 3):
    from ftkit.augmentation.review import write_review

    kept = [{**cand(f"c{i}", {}), "label": "billing", "messages": [
        {"role": "user", "content": ("=HYPERLINK(1)" if i == 0 else f"question {i}")},
        {"role": "assistant", "content": '{"category": "billing"}'}]} for i in range(n)]
    paths = write_review(tmp_path, kept)
    return paths, json.loads(paths["key"].read_text())


def _fill(path, decisions: list[tuple[str, str]], reviewer: str = "Ana", drop: int | None = None) -> str:
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    for row, (decision, edited) in zip(rows, decisions):
        row.update(decision=decision, edited_answer=edited, reviewer=reviewer)
    if drop is not None:
        rows.pop(drop)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_review_sheet_round_trip_neutralises_formulas_and_lists_rows_to_fix(tmp_path):
    from ftkit.augmentation.review import read_review
    from ftkit.errors import DataError

    paths, key = _sheet(tmp_path)
    raw = paths["csv"].read_text(encoding="utf-8-sig")
    assert "\"'=HYPERLINK(1)\"" in raw  # csv_cell: no formula runs when the reviewer opens the sheet
    html = paths["html"].read_text()
    assert "<script src" not in html and "question 1" in html
    filled = tmp_path / "filled.csv"
    filled.write_text(_fill(paths["csv"], [("Accept", ""), ("edit", '{"category": "account"}'), ("reject", "")]))
    decisions, reviewer = read_review(filled, key, lambda item, answer: "")
    assert reviewer == "Ana" and [d["decision"] for d in decisions.values()] == ["accept", "edit", "reject"]
    assert list(decisions.values())[1]["answer"] == '{"category": "account"}'

    filled.write_text(_fill(paths["csv"], [("yes", ""), ("edit", "")], drop=2))
    with pytest.raises(DataError) as err:
        read_review(filled, key, lambda item, answer: "")
    text = str(err.value)
    assert "line 2: item" in text and "'yes' is not valid" in text and "line 3:" in text and "have no row" in text
    filled.write_text(_fill(paths["csv"], [("accept", ""), ("edit", "x"), ("reject", "")]))
    with pytest.raises(DataError, match="line 3: .*edited answer is rejected: bad"):
        read_review(filled, key, lambda item, answer: "is rejected: bad")


def test_source_counts_and_the_synthetic_share_rule_on_both_sides():
    from ftkit.data.phase import NON_CLIENT_SHARE_WARN, sources_finding

    n = 100
    at = int(NON_CLIENT_SHARE_WARN * n)
    assert sources_finding({"train": {"client": n - at, "synthetic": at}})[:2] == ("info", "data.sources")
    assert sources_finding({"train": {"client": n - at - 1, "synthetic": at + 1}})[:2] == ("warning",
                                                                                          "data.mostly_synthetic")
    assert sources_finding({"train": {"client": 10}, "test": {"client": 3}})[2].startswith("Every example")
    assert "client test file" in sources_finding({"train": {"client": 10}, "test": {"uat": 2}})[2]


def test_the_data_card_states_the_share_per_split_and_label():
    from ftkit.data.datacard import render_data_card
    from ftkit.data.stats import source_counts

    metas = [{"label": "a"}] * 3 + [{"label": "a", "source": "synthetic"}, {"label": "b", "source": "uat"}]
    stats = {"sources": source_counts(metas, {0: "train", 1: "test", 2: "validation", 3: "train", 4: "train"})}
    card = render_data_card(stats, {})
    assert "train: client 1 (33.3 %), synthetic 1 (33.3 %), uat 1 (33.3 %)" in card
    assert "a: client 1 (50.0 %), synthetic 1 (50.0 %)" in card
    assert "every record is the client's own" in render_data_card({"sources": source_counts(metas[:3], {0: "train"})}, {})


def test_the_evaluation_leaves_non_client_test_examples_out_and_says_so():
    from types import SimpleNamespace

    from ftkit.evaluation.baseline_record import client_examples_only
    from ftkit.evaluation.phase import real_test_finding, real_test_note

    preds = [SimpleNamespace(id=str(i)) for i in range(4)]
    by_id = {"0": {}, "1": {"source": "synthetic"}, "2": {}, "3": {"source": "uat"}}
    kept, excluded = client_examples_only(preds, by_id)
    assert [p.id for p in kept] == ["0", "2"] and excluded == {"synthetic": 1, "uat": 1}
    assert real_test_finding(2, {}) is None and real_test_note(2, {}) == "2 (the client's own only)"
    found = real_test_finding(2, excluded)
    assert found.code == "evaluation.real_test_only" and "1 synthetic, 1 uat" in found.message


def test_cost_and_teacher_problem_findings_on_both_sides_of_the_share():
    from ftkit.augmentation.command import TEACHER_PROBLEM_WARN, cost_usd, teacher_findings

    assert cost_usd({"prompt_tokens": 10, "completion_tokens": 10}, {"input": 0.0, "output": 0.0}) is None
    calls = 10
    at = int(TEACHER_PROBLEM_WARN * calls)
    [low] = teacher_findings({"calls": calls, "problems": {"teacher.not_json": at}}, 0)
    [high] = teacher_findings({"calls": calls, "problems": {"teacher.not_json": at + 1}}, 0)
    assert (low.severity, high.severity) == ("info", "warning") and low.code == "augment.not_json"


def test_not_yet_from_the_typed_suitability_results_makes_the_whole_set_the_target(make_engagement):
    from ftkit.augmentation.command import make_plan, suitability_says_not_yet
    from ftkit.config import load_config
    from ftkit.fsutil import atomic_write_json
    from ftkit.suitability_phase import SuitabilityResults

    engagement = make_engagement("few", n=20)
    assert not suitability_says_not_yet(engagement)  # suitability has not run
    values = dict(recommendation="not_yet", headline="", criteria=[], method="", method_reason="", hosting="",
                  hosting_reason="", readiness="insufficient", n_examples=20, params_b=0.1, risks=[], would_change=[],
                  timeline_weeks=[2, 6], timeline_plan=[])
    for recommendation, expected in (("not_yet", True), ("fine_tune", False)):
        results = SuitabilityResults(**{**values, "recommendation": recommendation})
        run = engagement.runs_dir("suitability") / f"R-{recommendation}"
        atomic_write_json(run / "results.json", {"schema": results.schema(), "results": results.to_results()})
        engagement.set_latest("suitability", run.name)
        assert suitability_says_not_yet(engagement) is expected
    train = [rec(i, f"ticket {i}") for i in range(5)]
    plan = make_plan(load_config(engagement.config_path), "A", train, {"kind": "x"}, True)
    assert [t["kind"] for t in plan["targets"]] == ["all"] and len(plan["schedule"]) == 20  # 100 asked, 5 per call


def test_rejection_findings_name_no_candidates_and_none_kept():
    from ftkit.augmentation.command import rejection_findings

    assert [f.code for f in rejection_findings({}, 0, 0)] == ["augment.no_candidates"]
    codes = [f.code for f in rejection_findings({"pii": 2, "test_leak": 1}, 0, 3)]
    assert codes == ["augment.filtered", "augment.test_leak", "augment.none_kept"]
    assert [f.code for f in rejection_findings({"pii": 1}, 2, 3)] == ["augment.filtered"]
