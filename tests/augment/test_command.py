"""`ftkit augment` end to end on the demo engagement: a fixed-candidate teacher over real HTTP (every filter,
bad answers, cost), the review round trip, provenance, and the next data audit counting synthetic examples."""
from __future__ import annotations

import csv
import io
import json

import pytest

from augment_helpers import set_settings

SYSTEM = None  # the demo's system prompt, read from the engagement below


def _records(engagement, split: str) -> list[dict]:
    run = engagement.latest_run_dir("data_audit")
    return [json.loads(line) for line in (run / f"{split}.jsonl").read_text().splitlines()]


def _pair(record: dict) -> dict:
    return {"input": record["messages"][-2]["content"], "answer": record["messages"][-1]["content"]}


def _good(i: int, category: str = "returns") -> dict:
    topics = ["a zipper that split on the {p} after two walks", "a strap of the {p} that tore at the seam",
              "the wrong colour of {p} arriving in the box", "a {p} that smells of smoke out of the bag",
              "a {p} with a cracked buckle on delivery", "a {p} two sizes smaller than the label says"]
    products = ["daypack", "parka", "camp chair", "tarp", "mug set", "gaiter pair", "bike light", "sun hat"]
    return {"input": f"Hello, I would like to send back {topics[i % len(topics)].format(p=products[i % len(products)])}. "
                     f"How does the return work for case {i * 37 + 11}?",
            "answer": {"category": category, "priority": "low"}}


def thinnest(train: list[dict]) -> tuple[str, int]:
    from collections import Counter

    counts = Counter(r["label"] for r in train)
    label = min(counts, key=lambda k: (counts[k], k))
    assert sorted(counts.values()).count(counts[label]) == 1, counts  # one thin label: the target
    return label, counts[label]


def _script(train: list[dict], test: list[dict], label: str) -> list[dict]:
    """Replies: one batch with a bad candidate of each kind, then each bad answer kind, then good batches."""
    first = [_good(0, label), _pair(test[0]), {"input": "Please write to jane.doe@example.com about order 55",
                                               "answer": {"category": label, "priority": "low"}},
             _pair(train[0]), {"input": "My parcel exploded into confetti, what now?",
                               "answer": {"category": "weather", "priority": "low"}},
             {"inputs": "wrong key"}, _good(1, label), _good(9, "technical" if label != "technical" else "billing")]
    return [{"content": json.dumps(first)}, {"content": "I'm sorry, I can't help with that."}, {"content": ""},
            {"content": "Here are some ideas: returns are great"},
            {"content": "```json\n" + json.dumps([_good(2, label), _good(3, label), _good(2, label)]) + "\n```"},
            {"content": json.dumps({"examples": [_good(4, label), _good(5, label)]})}]


@pytest.fixture
def augmented(audited, fixed_teacher, monkeypatch):
    from ftkit.augmentation.command import generate

    train, test = _records(audited, "train"), _records(audited, "test")
    label, have = thinnest(train)
    server = fixed_teacher(_script(train, test, label), api_key="sk-test-123")
    monkeypatch.setenv("TEACHER_KEY", "sk-test-123")
    set_settings(audited, {"augmentation.teacher.base_url": server.base_url, "augmentation.teacher.model": "fixed-teacher",
                           "augmentation.teacher.api_key_env": "TEACHER_KEY", "augmentation.min_per_target": have + 1,
                           "augmentation.candidates_per_target": 36, "augmentation.per_call": 6,
                           "augmentation.max_calls": 6, "augmentation.usd_per_1k_input_tokens": 0.5,
                           "augmentation.usd_per_1k_output_tokens": 1.5})
    summary = generate(audited, on_event=lambda m: None)
    return audited, server, summary, train, test


def test_every_filter_and_bad_answer_is_counted_with_the_teacher_recorded(augmented):
    engagement, server, summary, train, test = augmented
    assert summary["status"] == "awaiting_review"
    assert len(server.requests) == 6 and all(r["authorization"] == "Bearer sk-test-123" for r in server.requests)
    body = server.requests[0]["body"]
    assert body["model"] == "fixed-teacher" and body["temperature"] == 0.8 and body["seed"] == 0
    shown = body["messages"][1]["content"]
    test_inputs = {r["messages"][-2]["content"] for r in test}
    assert not any(t in shown for t in test_inputs)  # few-shot from the training split only
    rejected = summary["filtered"]["rejected"]
    assert rejected["test_leak"] == 1 and rejected["pii"] == 1 and rejected["duplicate_train"] == 1
    assert rejected["record_check"] + rejected["label_unknown"] == 1  # "weather" breaks the schema's enum
    assert rejected["shape"] == 1 and rejected["duplicate_candidate"] == 1 and rejected["off_target"] == 1
    assert summary["filtered"]["kept"] == 6
    assert summary["calls"]["problems"] == {"teacher.refusal": 1, "teacher.empty": 1, "teacher.not_json": 1}
    assert summary["calls"]["prompt_tokens"] == 600 and summary["cost_usd"] == pytest.approx(0.6 * 0.5 + 0.3 * 1.5)
    codes = {f["code"] for f in summary["findings"]}
    assert {"augment.refusal", "augment.empty", "augment.not_json", "augment.filtered", "augment.test_leak"} <= codes
    run = engagement.path / summary["sheet"]["csv"]
    assert run.is_file() and (run.parent / "review.html").is_file() and (run.parent / "rejected.csv").is_file()
    plan = json.loads((run.parent / "augment.json").read_text())["plan"]
    assert plan["teacher"] == {"kind": "openai_compatible", "base_url": server.base_url, "model": "fixed-teacher",
                               "api_key_env": "TEACHER_KEY"}
    assert "sk-test-123" not in "".join(p.read_text() for p in run.parent.iterdir())  # the key is never written
    calls = [json.loads(line) for line in (run.parent / "candidates.jsonl").read_text().splitlines()][1:-1]
    assert calls[0]["request"] == body["messages"] and calls[0]["seed"] == 0 and calls[1]["seed"] == 1


def _fill(sheet_path, decisions: dict[int, tuple[str, str]], reviewer: str = "Dana") -> str:
    text = sheet_path.read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    for i, row in enumerate(rows):
        row["decision"], row["edited_answer"] = decisions.get(i, ("accept", ""))
        row["reviewer"] = reviewer
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def test_review_round_trip_writes_provenance_and_the_next_data_audit_counts_them(augmented, tmp_path):
    from ftkit.augmentation.accept import accept
    from ftkit.config import load_config
    from ftkit.errors import DataError
    from ftkit.runner import run_phases

    engagement, _, summary, train, _ = augmented
    sheet = engagement.path / summary["sheet"]["csv"]
    bad = tmp_path / "bad.csv"
    bad.write_text(_fill(sheet, {0: ("maybe", ""), 1: ("edit", ""), 2: ("edit", '{"category": "weather"}')}))
    with pytest.raises(DataError) as err:
        accept(engagement, bad, on_event=lambda m: None)
    assert "line 2:" in str(err.value) and "'maybe' is not valid" in str(err.value)
    assert "line 3:" in str(err.value) and "edited_answer is empty" in str(err.value)
    assert "line 4:" in str(err.value) and "edited answer is rejected" in str(err.value)
    assert not list(engagement.data_dir.glob("synthetic-*"))

    filled = tmp_path / "review_dana.csv"
    label, _ = thinnest(train)
    filled.write_text(_fill(sheet, {0: ("reject", ""), 1: ("edit", json.dumps({"category": label, "priority": "medium"}))}))
    out = accept(engagement, filled, on_event=lambda m: None)
    assert out["decisions"] == {"accept": 4, "edit": 1, "reject": 1}
    path = engagement.path / out["file"]
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 5 and all(r["source"] == "synthetic" for r in records)
    prov = records[0]["provenance"]
    assert prov["teacher"]["model"] == "fixed-teacher" and prov["decision"] == "edit" and prov["reviewer"] == "Dana"
    assert len(prov["sheet_sha256"]) == 64 and len(prov["prompt_sha256"]) == 64 and "seed" in prov
    assert records[0]["messages"][-1]["content"] == json.dumps({"category": label, "priority": "medium"})
    assert out["file"] in load_config(engagement.config_path).data.files
    assert "synthetic_data_added" in engagement.audit_path.read_text()

    # The next data audit, with its optional augmentation section on: the teacher's (repeated) last answer is now
    # a copy of accepted training examples, so the section's filters reject it as such.
    set_settings(engagement, {"augmentation.min_per_target": 1000, "augmentation.max_calls": 2})
    [outcome] = run_phases(engagement, ["data_audit"], {"augment": True}, progress=False)
    assert outcome.succeeded, outcome.error
    run = engagement.latest_run_dir("data_audit")
    results = json.loads((run / "results.json").read_text())
    [in_run] = (run / "augmentation").iterdir()
    assert json.loads((in_run / "augment.json").read_text())["filtered"]["rejected"]["duplicate_train"] == 4
    assert any(f["code"] == "augment.filtered" for f in results["findings"])
    sources = results["results"]["stats"]["sources"]
    assert sources["per_split"]["train"]["synthetic"] == 5
    label, _ = thinnest(train)
    assert "synthetic" not in sources["per_split"].get("test", {}) and sources["train_per_label"][label]["synthetic"] == 5
    assert any(f["code"] == "data.sources" and "5 synthetic" in f["message"] for f in results["findings"])
    card = (run / "data_card.md").read_text()
    assert "synthetic 5" in card and "the evaluation scores the client's own test examples only" in card
    trained = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    carried = [r for r in trained if r.get("source") == "synthetic"]
    assert len(carried) == 5 and carried[0]["provenance"]["sheet_sha256"] == prov["sheet_sha256"]
    from ftkit.cli import main
    assert main(["verify", engagement.slug, "--root", str(engagement.root)]) == 0  # the new event keeps the chain
