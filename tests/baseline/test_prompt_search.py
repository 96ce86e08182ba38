"""baseline.prompt_search: candidates, the validation sample, the variants file, the choice rule and its findings;
then one real run on the tiny model: a validation set built so that one candidate must win, through the baseline
notebook, and the evaluation's two comparisons (fine-tuned under its own prompt vs the base model's best prompt,
and the same-prompt view) with both prompts recorded and hashed."""
from __future__ import annotations

import hashlib
import json

import pytest

from ftkit.baseline import prompt_search as ps
from ftkit.config import parse_config
from ftkit.errors import ConfigError, DataError
from ftkit.generation import Prediction
from ftkit.prompting import make_spec


def rec(i, label, split="train"):
    return {"id": f"{split}-{i}", "label": label,
            "messages": [{"role": "user", "content": f"{split} ticket {i}"}, {"role": "assistant", "content": label}]}


TRAIN = [rec(i, "ab"[i % 2]) for i in range(10)] + [rec(10 + i, "c") for i in range(4)]
VALIDATION = [rec(i, "abc"[i % 3], "val") for i in range(30)]


def config(**search):
    return parse_config({"task": {"type": "classification", "system_prompt": "Classify the ticket."},
                         "baseline": {"prompt_search": {"enabled": True, **search}}})


# -- candidates ------------------------------------------------------------------------------------------------------

def test_candidates_in_order_with_the_label_set_spelled_out_and_shots_from_train_only():
    cands = ps.candidates(config(k_shots=[3, 1]), TRAIN)
    assert [c.name for c in cands] == ["zero-shot", "spelled-out", "1-shot", "3-shot"]
    assert cands[0].spec == make_spec(TRAIN, 0, "Classify the ticket.", 42)  # the consultant's prompt
    assert cands[1].spec.instruction == "Answer with exactly one of these labels and nothing else: a, b, c."
    from ftkit.prompting import build_messages

    own = {"id": "o", "messages": [{"role": "system", "content": "Own prompt."}, *TRAIN[0]["messages"]]}
    assert build_messages(TRAIN[0], cands[1].spec)[0]["content"] == "Classify the ticket.\n\n" + cands[1].spec.instruction
    assert build_messages(own, cands[1].spec)[0]["content"] == "Own prompt.\n\n" + cands[1].spec.instruction
    assert build_messages(own, cands[0].spec)[0]["content"] == "Own prompt."  # unchanged without a search
    train_ids = {r["id"] for r in TRAIN}
    three = cands[3].spec
    assert set(three.shot_ids) <= train_ids and len(three.shot_ids) == 3
    assert sorted(s["messages"][-1]["content"] for s in three.shots) == ["a", "b", "c"]  # stratified by label
    assert len({c.spec_sha256 for c in cands}) == 4
    assert [c.name for c in ps.candidates(config(spell_out=False, k_shots=[]), TRAIN)] == ["zero-shot"]


def test_structured_output_spells_out_the_schema_or_the_keys_of_the_train_answers():
    js = {"type": "object", "required": ["category"]}
    with_schema = parse_config({"task": {"type": "structured_output", "json_schema": js}})
    train = [{"id": "t", "messages": [{"role": "user", "content": "x"},
                                      {"role": "assistant", "content": '{"category": "a", "priority": "low"}'}]}]
    assert ps.spelled_out_instruction(with_schema.task, train) == ps.SCHEMA_INSTRUCTION.format(
        schema='{"required": ["category"], "type": "object"}')
    keys = parse_config({"task": {"type": "structured_output"}})
    assert ps.spelled_out_instruction(keys.task, train).endswith("with exactly these keys: category, priority.")
    assert ps.spelled_out_instruction(parse_config({"task": {"type": "free_text"}}).task, train) is None


def test_validation_sample_is_seeded_stratified_and_bounded():
    sample = ps.validation_sample(VALIDATION, 9, seed=7)
    assert len(sample) == 9 and sample == ps.validation_sample(VALIDATION, 9, seed=7)
    assert sorted(r["label"] for r in sample) == ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    assert [r["id"] for r in sample] == [r["id"] for r in VALIDATION if r in sample]  # file order
    assert ps.validation_sample(VALIDATION, 0, 7) == VALIDATION == ps.validation_sample(VALIDATION, 99, 7)


def test_bad_search_settings_name_the_field():
    for bad, text in (({"k_shots": [0, 2]}, "k_shots must be whole numbers of at least 1, got [0]"),
                      ({"max_examples": -1}, "max_examples must be 0 (all) or more, got -1")):
        with pytest.raises(ConfigError) as info:
            config(**bad)
        assert "baseline.prompt_search" in str(info.value) and text in str(info.value)


# -- the variants file -----------------------------------------------------------------------------------------------

def test_variants_file_is_read_with_lines(tmp_path):
    path = tmp_path / "variants.yaml"
    path.write_text("- name: polite\n  system_prompt: |\n    Be polite.\n    One label only.\n  shots: 2\n"
                    "- name: terse\n  system_prompt: Label?\n", encoding="utf-8")
    variants = ps.read_variants(path)
    assert variants == [{"name": "polite", "system_prompt": "Be polite.\nOne label only.\n", "shots": 2, "line": 1},
                        {"name": "terse", "system_prompt": "Label?", "shots": 0, "line": 6}]
    cands = ps.candidates(config(k_shots=[1]), TRAIN, variants, "variants.yaml")
    assert [(c.name, c.kind, c.origin, len(c.spec.shots)) for c in cands[-2:]] == [
        ("polite", "variant", "variants.yaml line 1", 2), ("terse", "variant", "variants.yaml line 6", 0)]
    from ftkit.prompting import build_messages

    own = {"id": "o", "messages": [{"role": "system", "content": "Own prompt."}, *TRAIN[0]["messages"]]}
    assert build_messages(own, cands[-1].spec)[0] == {"role": "system", "content": "Label?"}  # replaces the record's


@pytest.mark.parametrize("text, where", [
    ("- name: a\n  system_prompt: x: y\n", "line 2: YAML syntax error: mapping values are not allowed here"),
    ("name: a\n", "expected a YAML list"),
    ("- name: a\n  system_prompt: x\n- name: b\n", "line 3: system_prompt: expected text, got None"),
    ("- name: a\n  system_prompt: x\n  shots: -1\n", "line 3: shots: expected a whole number of at least 0, got -1"),
    ("- name: a\n  system_prompt: x\n  temperature: 0.2\n", "line 3: temperature: unknown key"),
    ("- name: a\n  system_prompt: x\n- name: a\n  system_prompt: y\n", "line 3: name: 'a' is already taken"),
    ("- name: zero-shot\n  system_prompt: x\n", "line 1: name: 'zero-shot' is already taken"),
    ("- just a string\n", "line 1: expected a mapping"),
])
def test_bad_variants_files_name_file_line_and_field(tmp_path, text, where):
    path = tmp_path / "variants.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as info:
        ps.read_variants(path)
    assert str(info.value).startswith(str(path)) and where in str(info.value)


def test_missing_variants_file_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="variants file not found; create it or clear"):
        ps.read_variants(tmp_path / "nope.yaml")


# -- the choice ------------------------------------------------------------------------------------------------------

def scored(name, correct, prompt_tokens):
    from ftkit.metrics import evaluate

    task = config().task
    preds = [Prediction(f"v{i}", f"{name}-{i}", "a" if ok else "b", "a", prompt_tokens, 1, 0.1, False, "a")
             for i, ok in enumerate(correct)]
    return ps.Scored(ps.Candidate(name, "k_shot", make_spec([], 0, name)), evaluate(preds, task), preds)


def test_the_best_validation_score_wins_and_ties_go_to_the_shorter_prompt_then_the_earlier():
    zero, better, tied_longer = scored("zero", [1, 0, 0, 0], 50), scored("better", [1, 1, 1, 0], 90), \
        scored("tied", [1, 1, 1, 0], 120)
    winner, rows = ps.choose([zero, better, tied_longer])
    assert winner is better and [r["winner"] for r in rows] == [False, True, False]
    assert rows[1]["accuracy"] == 0.75 and rows[1]["diff_to_zero_shot"] == pytest.approx(0.5)
    assert rows[1]["ci_low"] <= 0.75 <= rows[1]["ci_high"] and rows[1]["mean_prompt_tokens"] == 90
    shorter = scored("shorter", [0, 1, 1, 1], 60)  # same accuracy as "better", fewer prompt tokens
    assert ps.choose([zero, better, shorter])[0] is shorter
    same_length = scored("same", [0, 1, 1, 1], 90)
    assert ps.choose([zero, better, same_length])[0] is better  # full tie: the earlier candidate
    assert ps.choose([zero, scored("worse", [0, 0, 0, 0], 10)])[0] is zero


def test_findings_on_both_sides_of_the_validation_size_and_for_the_winner():
    few = ps.validation_size_finding(ps.MIN_VALIDATION_EXAMPLES - 1)
    enough = ps.validation_size_finding(ps.MIN_VALIDATION_EXAMPLES)
    assert (few.severity, few.code) == ("warning", "baseline.prompt_search.few_examples")
    assert (enough.severity, enough.code) == ("info", "baseline.prompt_search.examples")
    assert ps.no_validation_finding().severity == "warning" and "data.split.validation" in ps.no_validation_finding().next_step
    _, rows = ps.choose([scored("zero", [1, 0, 0, 0], 50), scored("better", [1, 1, 1, 1], 90)])
    won = ps.winner_finding(rows, "accuracy")
    assert "Best prompt on validation: better (accuracy 1.000" in won.message and "+0.750" in won.message
    _, rows = ps.choose([scored("zero", [1, 1, 0, 0], 50), scored("worse", [0, 0, 0, 0], 90)])
    assert "zero-shot prompt won" in ps.winner_finding(rows, "accuracy").message


# -- one real run on the tiny model ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def searched(tiny_chain, tmp_path_factory):
    """A copy of the trained tiny chain whose baseline is re-run with the search on: zero-shot, 1-shot and the
    variant 'bare' (no system prompt). The tiny random model scores every prompt alike (it answers nothing useful),
    so the documented tie-break must pick the shortest prompt, 'bare'; the test-set baseline then differs from the
    fine-tuned model's prompt and the evaluation has two views."""
    from ftkit import yamlio
    from ftkit.engagement import Engagement
    from ftkit.runner import run_phases

    tiny_chain.through("training")
    engagement = tiny_chain.copy(tmp_path_factory.mktemp("searched"))
    settings = yamlio.safe_load(engagement.config_path.read_text())
    settings["baseline"]["prompt_search"] = {"enabled": True, "max_examples": 6, "k_shots": [1], "spell_out": False,
                                             "variants_file": "variants.yaml"}
    engagement.config_path.write_text(yamlio.dump(settings))
    (engagement.path / "variants.yaml").write_text("- name: bare\n  system_prompt: ''\n")
    train = [json.loads(line) for line in
             (engagement.latest_run_dir("data_audit") / "train.jsonl").read_text().splitlines()]
    [outcome] = run_phases(engagement, ["baseline"], progress=False)
    assert outcome.succeeded, outcome.error
    return Engagement.from_dir(engagement.path), outcome.run_dir, {r["id"] for r in train}


def test_the_search_applies_its_rule_on_a_real_run_and_records_every_candidate(searched):
    from ftkit.fsutil import read_json

    engagement, run_dir, train_ids = searched
    search = read_json(run_dir / "prompt_search.json")
    rows = {r["candidate"]: r for r in search["rows"]}
    metric = search["metric"]
    assert list(rows) == ["zero-shot", "1-shot", "bare"] and len({r[metric] for r in rows.values()}) == 1  # all tied
    assert rows["bare"]["mean_prompt_tokens"] < min(rows["zero-shot"]["mean_prompt_tokens"],
                                                    rows["1-shot"]["mean_prompt_tokens"])
    assert search["winner"]["name"] == "bare" and rows["bare"]["winner"]
    assert search["n_validation"] == 6 and len(set(search["validation_ids"])) == 6
    audit = engagement.latest_run_dir("data_audit")
    held_out = {json.loads(line)["id"] for name in ("validation.jsonl", "test.jsonl")
                for line in (audit / name).read_text().splitlines()}
    assert set(search["validation_ids"]) <= held_out
    for cand in search["candidates"]:  # every shot comes from the train split, none from validation or test
        assert set(cand["shot_ids"]) <= train_ids and not set(cand["shot_ids"]) & held_out
    assert [len(c["shot_ids"]) for c in search["candidates"]] == [0, 1, 0]
    for row in search["rows"]:  # each candidate's answers kept, on exactly the validation sample
        answers = [json.loads(line) for line in (run_dir / row["predictions"]).read_text().splitlines()]
        assert [a["id"] for a in answers] == search["validation_ids"]
        assert row["prompts_sha256"] == hashlib.sha256("\n".join(a["prompt_sha256"] for a in answers).encode()).hexdigest()
    # The winner is the test-set baseline; every candidate and the served prompt are recorded and hashed.
    prompt = read_json(run_dir / "prompt.json")
    assert prompt["system_prompt"] == "" and prompt["replace_system"] and prompt["prompt_search"]["winner"] == "bare"
    assert prompt["example_messages"][0]["role"] == "user"  # no system prompt at all
    assert prompt["served_prompt"]["name"] == "zero-shot" and prompt["served_prompt"]["n_shots"] == 0
    from ftkit.config import load_config

    assert prompt["served_prompt"]["spec"]["system_prompt"] == load_config(engagement.config_path).task.system_prompt != ""
    assert prompt["served_prompt"]["predictions"] == "predictions_served_prompt.jsonl"
    res = read_json(run_dir / "results.json")
    assert res["schema"]["version"] == 2 and res["results"]["prompt_search"]["winner"]["name"] == "bare"
    served = [json.loads(line) for line in (run_dir / "predictions_served_prompt.jsonl").read_text().splitlines()]
    best = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in served] == [p["id"] for p in best] and len(best) == 12
    assert all(a["prompt_sha256"] != b["prompt_sha256"] for a, b in zip(served, best))
    codes = {f["code"] for f in res["findings"]}
    assert {"baseline.prompt_search.winner", "baseline.prompt_search.few_examples",
            "baseline.prompt_search.test_check"} <= codes
    assert "variants.yaml" in res["inputs"]


def test_the_evaluation_compares_against_the_best_prompt_and_keeps_the_same_prompt_view(searched, tmp_path):
    from ftkit.evaluation import phase
    from ftkit.generation import generate_local
    from ftkit.phase_run import PhaseRun

    engagement, _, _ = searched
    run = PhaseRun.open("evaluation", str(engagement.path), str(tmp_path / "run"), show=False)
    c = phase.what_is_compared(run).value
    same = phase.same_prompts(c)
    prompts, fingerprint = same.value
    assert c.baseline.two_prompts and {f.code for f in same.findings} >= {"evaluation.best_prompt"}
    # The fine-tuned model answers under its served (zero-shot) prompt, verified against the base model's answers
    # under that prompt; the primary comparison is against the base model's best prompt.
    assert [p.sha256 for p in prompts] == [p.prompt_sha256 for p in c.baseline.served_predictions]
    assert all(p.sha256 != b.prompt_sha256 for p, b in zip(prompts, c.baseline.predictions))
    new_preds = generate_local(c.ft.model, c.ft.tokenizer, prompts, c.baseline.max_new_tokens, 8, progress=False)
    primary = phase.metrics_comparison(c, new_preds, run.config).value
    view = phase.same_prompt_view(c, new_preds, run.config).value
    m = c.headline_metric
    assert primary.rows[m]["fine_tuned"] == pytest.approx(view["metrics"][m]["fine_tuned"])
    base_best = read_values(c.baseline.predictions, run.config, m)
    base_served = read_values(c.baseline.served_predictions, run.config, m)
    assert primary.rows[m]["baseline"] == pytest.approx(base_best)
    assert view["metrics"][m]["baseline"] == pytest.approx(base_served)
    sides = {"baseline": c.baseline.prompt_record(False), "fine_tuned": c.baseline.prompt_record(True)}
    assert (sides["baseline"]["name"], sides["fine_tuned"]["name"]) == ("bare", "zero-shot")
    assert sides["fine_tuned"]["prompts_sha256"] == fingerprint != sides["baseline"]["prompts_sha256"]
    assert sides["baseline"]["spec_sha256"] != sides["fine_tuned"]["spec_sha256"]


def read_values(predictions, cfg, metric):
    from ftkit.metrics import evaluate

    return evaluate(predictions, cfg.task).value(metric)


def test_the_evaluation_findings_of_the_two_views():
    from ftkit.evaluation import phase

    side = {"name": "zero-shot", "n_shots": 0, "spec_sha256": "a" * 64, "prompts_sha256": "b" * 64}
    assert phase.best_prompt_finding(side, dict(side)) is None  # one prompt: nothing to say
    best = phase.best_prompt_finding({**side, "name": "3-shot", "n_shots": 3, "spec_sha256": "c" * 64}, side)
    assert (best.severity, best.code) == ("info", "evaluation.best_prompt")
    assert "under its best prompt found on validation (3-shot, 3 shots" in best.message
    row = {"baseline": 0.25, "fine_tuned": 0.75, "diff": 0.5, "diff_ci": [0.3, 0.7]}
    view = phase.same_prompt_view_finding(row, "accuracy", "zero-shot")
    assert view.code == "evaluation.same_prompt_view" and "accuracy 0.250 -> 0.750 (+0.500" in view.message
    check = ps.served_check_finding(0.5, 0.25, "accuracy", 40, "3-shot")
    assert check.code == "baseline.prompt_search.test_check" and "(3-shot) scores accuracy 0.500" in check.message


def test_tell_client_names_the_best_prompt_only_when_there_are_two():
    from ftkit.evaluation import phase

    def results(baseline_spec):
        sides = {"baseline": {"name": "3-shot", "spec_sha256": baseline_spec},
                 "fine_tuned": {"name": "zero-shot", "spec_sha256": "a"}}
        row = {"baseline": 0.2, "fine_tuned": 0.8, "diff": 0.6, "diff_ci": [0.4, 0.8], "significant": True,
               "higher_is_better": True}
        verdict = {"verdict": "go", "action": "deploy", "why": "ok", "criteria": [], "next_steps": [],
                   "used_default_criteria": False}
        return phase.EvaluationResults(
            training_run="t", iteration=1, baseline_run="b", prompts_sha256="x", generation={}, metrics={"accuracy": row},
            fine_tuned_metrics={"n": 10, "headline": {"name": "accuracy"}}, regressions=[], side_by_side=[],
            stops={"fine_tuned": {"runaways": 0, "n": 10}}, forgetting=None, training_health={}, iterations=[], ab={},
            judge=None, verdict=verdict, files={}, prompts=sides)
    assert "for the base model with its best prompt (3-shot)" in phase.what_to_tell_the_client(results("c"))
    assert "for the base model with the same prompt" in phase.what_to_tell_the_client(results("a"))


def test_the_section_off_and_without_a_validation_split_falls_back_to_the_configured_prompt():
    from types import SimpleNamespace

    from ftkit.baseline import phase

    splits = {"train": TRAIN, "validation": [], "test": VALIDATION, "scored": VALIDATION}
    off = phase.prompt_search(SimpleNamespace(config=parse_config({})), splits, 0)
    assert off.value is None and off.findings == [] and "Prompt search is off" in off.notes[0]
    none = phase.prompt_search(SimpleNamespace(config=config()), splits, 0)
    assert none.value is None and [f.code for f in none.findings] == ["baseline.prompt_search.no_validation"]


def test_the_headline_names_the_chosen_prompt():
    from ftkit.baseline import phase

    kw = dict(model={"name": "m"}, prompt={"n_shots": 1}, generation={}, failure_examples=[], candidates=None,
              files={}, metrics={"n": 12, "headline": {"name": "accuracy", "value": 0.5, "ci_low": 0.2, "ci_high": 0.8}})
    assert "best_prompt" not in phase.BaselineResults(**kw).headline_row()
    searched = phase.BaselineResults(**kw, prompt_search={"winner": {"name": "3-shot"}})
    assert searched.headline_row()["best_prompt"] == "3-shot"


def test_ftkit_run_refuses_a_bad_variants_file_before_any_phase_starts(make_engagement):
    from ftkit import yamlio
    from ftkit.runner import run_phases

    engagement = make_engagement("variants", n=20)
    settings = yamlio.safe_load(engagement.config_path.read_text())
    settings["baseline"]["prompt_search"] = {"enabled": True, "variants_file": "variants.yaml"}
    engagement.config_path.write_text(yamlio.dump(settings))
    (engagement.path / "variants.yaml").write_text("- name: a\n  system_prompt: x\n  shots: many\n")
    with pytest.raises(DataError, match=r"variants.yaml line 3: shots: expected a whole number"):
        run_phases(engagement, ["suitability", "data_audit", "baseline"], progress=False)
    assert engagement.latest_run_id("suitability") is None  # nothing ran
