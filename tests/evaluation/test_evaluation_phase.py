"""The evaluation notebook through the real runner on the tiny chain (tiny random model, real phases upstream)."""
from __future__ import annotations

import csv
import json

import pytest
from ftkit import yamlio

from ftkit.errors import PhaseFailed
from ftkit.fsutil import read_json
from ftkit.resources import notebooks_dir

pytestmark = pytest.mark.skipif(not (notebooks_dir() / "04_training.ipynb").is_file(),
                                reason="needs the training phase notebook (issue 5)")


@pytest.fixture(scope="module")
def evaluated(tiny_chain):
    engagement = tiny_chain.through("evaluation")
    return engagement, engagement.latest_run_dir("evaluation")


def test_evaluation_pairs_the_baseline_and_records_a_verdict(evaluated):
    engagement, run_dir = evaluated
    res = read_json(run_dir / "results.json")
    head = res["headline"]
    assert head["verdict"] in ("go", "no_go", "pending") and head["headline_metric"] == "field_accuracy"
    assert head["delta"] == pytest.approx(head["fine_tuned"] - head["baseline"])
    # Exactly the baseline's examples, in its order, with byte-identical prompts.
    base_dir = engagement.latest_run_dir("baseline")
    base = [json.loads(line) for line in (base_dir / "predictions.jsonl").read_text().splitlines()]
    ours = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in ours] == [p["id"] for p in base]
    assert [p["prompt_sha256"] for p in ours] == [p["prompt_sha256"] for p in base]
    r = res["results"]
    assert r["training_run"] == engagement.latest_run_id("training")
    assert set(r["metrics"]) >= {"field_accuracy", "format_compliance", "label_accuracy"}
    assert r["metrics"]["label_accuracy"]["mcnemar"]["method"] in ("exact", "chi2")
    assert r["stops"]["round_trip"]["checked"] == len(ours) and r["stops"]["serving"]["end_of_turn"] == "<|im_end|>"
    assert r["forgetting"]["n"] == 30 and r["training_health"]["val_loss_trend"] in ("falling", "rising", "flat", "unknown")
    # The blind sheet: the key is separate from what reviewers get.
    key = read_json(run_dir / "ab" / "ab_key.json")
    assert key["n_items"] <= 8 and "baseline" not in (run_dir / "ab" / "ab_sheet.csv").read_text()
    codes = {f["code"] for f in res["findings"]}
    assert {"evaluation.verdict", "evaluation.same_prompts", "evaluation.template_round_trip",
            "evaluation.tiny_random_model"} <= codes
    assert res["tell_client"] and res["next_steps"]
    # Error analysis: slices (input length, the label field), per-field accuracy, label confusion, decision size.
    sl = r["slices"]
    assert sl == read_json(run_dir / "slices.json") and r["files"]["slices"] == "slices.json"
    assert {row["dimension"] for row in sl["slices"]["rows"]} >= {"input_length", "category"}
    assert all(row["too_small"] for row in sl["slices"]["rows"])  # 12 scored examples: no slice is ranked
    assert {row["field"] for row in sl["fields"]} == {"category", "priority"} and len(sl["per_label"]) >= 2
    assert sl["subset"]["stratified_by"] == "label" and sl["subset"]["n"] == len(ours)
    assert (run_dir / "figures" / "confusion_matrix_fine_tuned.png").is_file()
    assert {"evaluation.slices"} <= codes and codes & {"evaluation.test_set_size", "evaluation.test_set_too_small"}
    assert "by slice" in (run_dir / "report.html").read_text()
    # Suspect labels (a structured-output task: ranked by the loss of the given answer), the review sheet written.
    sus = read_json(run_dir / "suspects" / "suspect_labels.json")
    assert sus["ranked_by"] == "loss" and sus["n_scored"] == sum(sus["n_scored_by_split"].values()) > 0
    assert set(sus["n_scored_by_split"]) == {"train", "validation", "test"}
    with open(run_dir / "suspects" / "suspect_labels.csv", encoding="utf-8-sig", newline="") as handle:
        sheet = list(csv.DictReader(handle))
    from ftkit.evaluation.suspects import SUSPECT_COLUMNS

    assert list(sheet[0]) == list(SUSPECT_COLUMNS) and len(sheet) == sus["n_listed"]
    assert [int(r["rank"]) for r in sheet] == list(range(1, len(sheet) + 1))
    assert all(r["file"] == "tickets.jsonl" and r["line"].isdigit() for r in sheet), sheet[:2]
    assert {r["split"] for r in sheet if "in-sample" in r["score_kind"]} <= {"train"}
    assert "evaluation.suspect_labels" in codes and (run_dir / "suspects" / "suspect_labels.html").is_file()


@pytest.mark.slow
def test_second_iteration_with_human_ratings_and_criteria(evaluated, tiny_chain, tmp_path):
    """Retrain (a real second iteration), have two reviewers rate the sheet reviewers will get, re-evaluate."""
    from ftkit.evaluation import ab_sheet, baseline_record, finetuned, presentation
    from ftkit.generation import generate_local
    from ftkit.phase_run import PhaseRun
    from ftkit.runner import run_phases

    engagement = tiny_chain.copy(tmp_path)
    first_eval, first_training = engagement.latest_run_dir("evaluation"), engagement.latest_run_id("training")
    settings = yamlio.safe_load(engagement.config_path.read_text())
    settings["training"]["learning_rate"] = 0.05  # large enough to change the tiny model's answers in 6 steps
    settings["evaluation"]["acceptance"] = [{"metric": "win_rate", "min": 0.4}, {"metric": "regressions", "max": 1000}]
    engagement.config_path.write_text(yamlio.dump(settings))
    [trained] = run_phases(engagement, ["training"], progress=False)
    assert trained.succeeded, trained.error

    # What the evaluation will put on the blind sheet: the same functions, model, prompts and seed.
    run = PhaseRun.open("evaluation", str(engagement.path), ".", show=False)
    setup = baseline_record.load_baseline(run)
    ft = finetuned.load_finetuned(run.config, trained.run_dir)
    preds = generate_local(ft.model, ft.tokenizer, baseline_record.prompts_for(setup, ft.tokenizer), setup.max_new_tokens,
                           setup.batch_size, progress=False)
    pairs = [ab_sheet.PairItem(p.id, presentation.user_text(r), o.output, p.output)
             for r, o, p in zip(setup.records, setup.predictions, preds)]
    _, key = ab_sheet.build_sheet(pairs, run.config.evaluation.ab_items, seed=run.config.evaluation.seed)
    assert key["items"], "the retrained tiny model should answer differently from the baseline"
    reviews = engagement.path / "reviews" / "ab"
    reviews.mkdir(parents=True)
    for rater, choice in (("ann", "1"), ("bob", "2")):  # Ann always picks output 1, Bob always output 2
        with open(reviews / f"{rater}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["item_id", "choice", "comment"])
            writer.writerows([it["item_id"], choice, ""] for it in key["items"])

    [outcome] = run_phases(engagement, ["evaluation"], progress=False)
    assert outcome.succeeded, outcome.error
    res = read_json(outcome.run_dir / "results.json")
    assert res["results"]["ab"]["sheet_id"] == key["sheet_id"]
    human = res["results"]["ab"]["human"]
    n_first_ft = [it["first"] for it in key["items"]].count("fine_tuned")
    assert human["n_raters"] == 2 and human["win_rate"] == pytest.approx(0.5)  # the two raters cancel out exactly
    assert {r["rater"]: r["wins"] for r in human["per_rater"]} == {"ann": n_first_ft, "bob": key["n_items"] - n_first_ft}
    assert "reviews/ab/ann.csv" in res["inputs"] and "reviews/ab/bob.csv" in res["inputs"]
    rows = {c["metric"]: c for c in res["results"]["verdict"]["criteria"]}
    assert rows["win_rate"]["status"] == "pass" and rows["win_rate"]["value"] == pytest.approx(0.5)
    iters = res["results"]["iterations"]
    assert [(i["iteration"], i["training run"]) for i in iters] == [(2, trained.run_id), (1, first_training)]
    assert iters[1]["source"] == f"recorded by evaluation run {first_eval.name}"


def test_a_drifted_chat_template_is_refused_with_the_ids(evaluated, tiny_chain, tmp_path):
    from ftkit.evaluation import baseline_record, finetuned
    from ftkit.phase_run import PhaseRun

    engagement = tiny_chain.copy(tmp_path)
    run = PhaseRun.open("evaluation", str(engagement.path), ".", show=False)
    setup = baseline_record.load_baseline(run)
    tokenizer, _ = finetuned.serving_tokenizer(run.config, engagement.latest_run_dir("training"))
    assert len(baseline_record.prompts_for(setup, tokenizer)) == len(setup.records)
    tokenizer.chat_template = tokenizer.chat_template.replace("'\n'", "'\n\n'", 1)  # one extra newline per turn
    with pytest.raises(PhaseFailed) as info:
        baseline_record.prompts_for(setup, tokenizer)
    text = str(info.value)
    assert f"{len(setup.records)} of {len(setup.records)} prompts differ" in text and setup.records[0]["id"] in text
    assert "chat template" in text and "Re-run the baseline" in text
