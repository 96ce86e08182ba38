"""training.search: bounds validated, budget rule, pruning, a budget stop, and a resume after kill -9 (tiny model)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ftkit.config import parse_config
from hardening_helpers import kill_family
from ftkit.errors import ConfigError
from ftkit.fsutil import read_json
from ftkit.training import search

SPACE = {"learning_rate": [1e-5, 5e-2], "lora_r": [2, 8], "lora_dropout": [0.0, 0.1]}


def _problems(settings: dict) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config({"training": {"search": settings}})
    return str(err.value)


def test_bad_space_names_the_field_and_value():
    text = _problems({"enabled": True, "space": {"learning_rate": [-0.001, 0.01], "lora_r": [0, 8]}})
    assert "training.search.space" in text
    assert "learning_rate must be [low, high]" in text and "[-0.001, 0.01]" in text
    assert "lora_r must be [low, high]" in text and "[0, 8]" in text
    text = _problems({"space": {"lora_rank": [4, 8]}})
    assert "training.search.space.lora_rank: unknown setting; did you mean 'lora_r'?" in text
    text = _problems({"trials": 0, "pruner": "hyperband"})
    assert "training.search.pruner: 'hyperband' is not one of median, successive_halving, none" in text
    assert "low <= high" in _problems({"space": {"lora_dropout": [0.2, 0.1]}})
    assert "both set" in _problems({"space": {"epochs": [1, 2], "max_steps": [4, 8]}})
    assert "trials must be 1 or more, got 0" in _problems({"trials": 0})
    ok = parse_config({"training": {"search": {"enabled": True, "space": SPACE}}}).training.search
    assert ok.space.searched() == SPACE


def test_budget_rule_on_both_sides_of_the_limit():
    assert search.budget_stop(0.6, 0, 0.4, 0, budget_usd=1.0, budget_hours=0) == ""  # exactly at the budget
    assert "of its $1.0000 budget" in search.budget_stop(0.6, 0, 0.41, 0, budget_usd=1.0, budget_hours=0)
    assert search.budget_stop(0, 1.0, 0, 1.0, budget_usd=0, budget_hours=2.0) == ""
    assert "device-hours" in search.budget_stop(0, 1.0, 0, 1.01, budget_usd=0, budget_hours=2.0)
    assert search.budget_stop(100, 100, 100, 100, budget_usd=0, budget_hours=0) == ""  # no budget set


def test_the_search_budget_never_exceeds_what_is_left_of_the_engagement_budget():
    assert search.engagement_cap(2.0, 10.0, 8.0) == (2.0, "")  # exactly what is left: not capped
    usd, why = search.engagement_cap(2.01, 10.0, 8.0)
    assert usd == pytest.approx(2.0) and "budget.total_usd" in why
    assert search.engagement_cap(0.0, 10.0, 12.0)[0] == 0.0  # used up: the section then runs no search
    assert search.engagement_cap(0.0, 0.0, 12.0) == (0.0, "")  # no engagement budget: the search's own applies


def test_estimate_is_the_slowest_step_rate_plus_the_largest_fixed_time():
    measured = [{"wall_seconds": 12.0, "train_seconds": 10.0, "steps_done": 10},
                {"wall_seconds": 9.0, "train_seconds": 8.0, "steps_done": 4}]  # 2 s/step, 3 s fixed at most
    assert search.estimate_seconds(measured, 6) == pytest.approx(2.0 * 6 + 2.0)
    assert search.estimate_seconds([], 6) is None


def test_trial_settings_keep_alpha_ratio_and_train_one_process():
    from ftkit.config import TrainingSettings
    from ftkit.training.settings import resolve_settings

    base = resolve_settings(TrainingSettings(lora_r=16, lora_alpha=32, max_steps=20), 256)
    t = search.trial_settings(base, {"lora_r": 4, "learning_rate": 1e-3})
    assert (t.lora_r, t.lora_alpha, t.learning_rate, t.early_stopping_patience, t.max_steps) == (4, 8, 1e-3, 0, 20)
    assert search.trial_settings(base, {"epochs": 1.5}).max_steps == 0  # searched epochs are not overridden


def test_pruning_callback_stops_a_trailing_trial_with_a_real_study():
    import optuna
    from transformers import TrainerControl, TrainerState

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    for losses in ([3.0, 2.0, 1.0], [3.0, 2.1, 1.1]):
        t = study.ask()
        for step, loss in enumerate(losses):
            t.report(loss, step)
        study.tell(t, min(losses))
    for losses, pruned in (([3.0, 2.9], 1), ([3.0, 1.5], None)):
        callback, state, control = search._pruning_callback(study.ask()), TrainerState(), TrainerControl()
        for step, loss in enumerate(losses):
            state.global_step = step
            callback.on_evaluate(None, state, control, metrics={"eval_loss": loss})
        assert callback.pruned_at == pruned and control.should_training_stop == (pruned is not None)


def _search_settings(audited, set_training, **search_values):
    set_training(audited, max_steps=6, eval_steps=2, batch_size=2, eval_max_examples=8,
                 search={"enabled": True, "subset": 40, "space": SPACE, **search_values})


def test_four_trials_with_pruning_through_ftkit_run(audited, set_training):
    from ftkit.runner import run_phases
    from ftkit.verify import verify_engagement

    _search_settings(audited, set_training, trials=4, pruner="median")
    [outcome] = run_phases(audited, ["training"], progress=False)
    assert outcome.succeeded, outcome.error
    lines = search.trial_lines(outcome.run_dir / "search")
    assert [x["number"] for x in lines] == [0, 1, 2, 3] and lines[0]["default"]
    for x in lines:  # every trial's evidence: settings, curve, pruning decision, time, cost
        assert x["settings"]["learning_rate"] == x["params"]["learning_rate"] and x["wall_seconds"] > 0
        assert x["cost_usd"] > 0 and x["validation_curve"][0][0] == 0
        if x["state"] == "pruned":  # stopped where the pruner said, before the planned steps
            assert x["pruned_at_step"] == x["validation_curve"][-1][0] == x["steps_done"] < x["steps_planned"]
        else:
            assert x["pruned_at_step"] is None and x["steps_done"] == x["steps_planned"]
        assert (outcome.run_dir / "search" / f"trial-{x['number']:03d}" / "metrics.jsonl").is_file()
    assert any(x["state"] == "pruned" for x in lines)  # this space's low learning rates trail the others
    results = read_json(outcome.run_dir / "results.json")
    found = results["results"]["search"]
    complete = [x for x in lines if x["state"] == "complete"]
    assert found["best_val_loss"] == min(x["best_val_loss"] for x in complete)
    assert found["default_val_loss"] == lines[0]["best_val_loss"] and found["finished"] == 4
    settings = results["results"]["settings"]
    best = next(x for x in lines if x["number"] == found["best_trial"])
    assert settings["learning_rate"] == best["settings"]["learning_rate"]  # apply: true
    codes = [f["code"] for f in results["findings"]]
    assert {"training.search_trials", "training.search_best"} <= set(codes)
    manifest = read_json(outcome.run_dir / "manifest.json")
    assert "search/search.db" in manifest["outputs"] and "search/trials.jsonl" in manifest["outputs"]
    assert "cost.json" in manifest["outputs"]
    ledger_entry = read_json(outcome.run_dir / "cost.json")  # the search's share of the training run's cost
    assert ledger_entry["search"]["trials"] == 4
    assert 0 < ledger_entry["search"]["cost_usd"] < ledger_entry["cost_usd"]
    problems, _ = verify_engagement(audited)
    assert problems == [], problems
    from ftkit.reports import build_engagement_report

    html = build_engagement_report(audited).read_text()  # the report shows the ledger and the search
    assert 'id="summary-spend"' in html and "The training search ran 4 trial(s)" in html
    import optuna

    study = optuna.load_study(study_name=found.get("study") or _study_name(outcome.run_dir),
                              storage=f"sqlite:///{outcome.run_dir / 'search' / 'search.db'}")
    assert len([t for t in study.trials if t.state.is_finished()]) == 4


def _study_name(run_dir):
    return read_json(run_dir / "search" / "search_summary.json")["study"]


# -- the study on its own: budget stop, kill -9 and resume --------------------------------------------------------

@pytest.fixture
def study_parts(tiny_model_dir, tiny_tokenizer, tiny_examples, eot_id, tmp_path):
    """make(folder, **search) -> (SearchJob, train sequences, eval sequences) on the tiny model, 6 steps a trial."""
    from dataclasses import asdict

    from ftkit.config import SearchSettings, SearchSpace, TrainingSettings
    from ftkit.training.packing import build_sequences
    from ftkit.training.settings import resolve_settings

    base = resolve_settings(TrainingSettings(max_steps=6, eval_steps=2, batch_size=2, learning_rate=1e-3), 256)
    train = build_sequences(tiny_examples[:40], 256, True, 42)
    evals = build_sequences(tiny_examples[60:68], 256, True, 42)

    def make(folder, **values):
        cfg = SearchSettings(enabled=True, **{"space": SearchSpace(learning_rate=[1e-4, 1e-2], lora_r=[], lora_dropout=[]),
                                              "pruner": "none", **values})
        job = search.SearchJob(str(folder), base.to_dict(), asdict(cfg), search.study_key("fp", asdict(cfg)),
                               str(tiny_model_dir), eot_id, chat_template=tiny_tokenizer.chat_template)
        return job, train, evals

    return make


def test_a_budget_stops_the_search_after_two_trials(study_parts, tmp_path):
    job, train, evals = study_parts(tmp_path / "warm", trials=1)
    search.run_study(job, train, evals, log=lambda *_: None)  # imports and caches warmed up, as in a long search
    job, train, evals = study_parts(tmp_path / "budget", trials=1)
    first = search.run_study(job, train, evals, log=lambda *_: None)["trials"][0]["wall_seconds"]
    # the same study with a budget of 2.5 trials of that length: trial 1 fits (1 + 1 estimated <= 2.5); after it,
    # 2 spent + 1 estimated does not (the estimate takes the slowest rate seen, so a faster trial 1 changes nothing)
    budget_hours = 2.5 * first / 3600
    job, train, evals = study_parts(tmp_path / "budget", trials=4, budget_device_hours=budget_hours)
    summary = search.run_study(job, train, evals, log=lambda *_: None)
    assert summary["finished"] == 2, [t["wall_seconds"] for t in summary["trials"]]
    assert "would take the search to" in summary["stopped_by_budget"]
    assert summary["trials"][2]["state"] == "not started" and summary["trials"][2]["why_not_started"]
    assert summary["spent"]["device_hours"] <= budget_hours
    assert len(search.trial_lines(tmp_path / "budget")) == 2
    summary["target"] = 4
    finding = next(f for f in search.search_findings(summary) if f.code == "training.search_budget")
    assert finding.severity == "warning" and "after 2 of 4 trials" in finding.message


def test_a_killed_search_resumes_without_rerunning_finished_trials(audited, set_training):
    """kill -9 of `ftkit run` and its kernel mid-trial; the next run finishes the study from the killed run's."""
    from ftkit.runner import run_phases

    _search_settings(audited, set_training, trials=3, pruner="none")
    proc = subprocess.Popen([sys.executable, "-m", "ftkit.cli", "run", audited.slug, "--phase", "training",
                             "--root", str(audited.root)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs, deadline = audited.runs_dir("training"), time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None and not list(runs.glob("*/search/trial-001")):
            time.sleep(0.05)
    finally:  # the CLI and its notebook kernel, mid-trial 1, with no chance to clean up
        kill_family(proc)
    [killed] = list(runs.iterdir())
    before = search.trial_lines(killed / "search")
    assert [x["number"] for x in before] == [0], "killed before trial 1 started, or after the search ended"
    db_before = (killed / "search" / "search.db").read_bytes()
    assert search.find_interrupted_study(audited, "ftkit-search-other", exclude_run="") is None

    [outcome] = run_phases(audited, ["training"], progress=False)
    assert outcome.succeeded, outcome.error
    assert (killed / "search" / "search.db").read_bytes() == db_before  # the killed run's evidence untouched
    after = search.trial_lines(outcome.run_dir / "search")
    assert after[:1] == before and [x["number"] for x in after] == [0, 2, 3]  # trial 0 not re-run
    summary = read_json(outcome.run_dir / "search" / "search_summary.json")
    assert summary["resumed_from"] == killed.name and summary["interrupted_trials"] == [1]
    assert [r["state"] for r in summary["trials"]] == ["complete", "interrupted", "complete", "complete"]
    resumed = next(f for f in read_json(outcome.run_dir / "results.json")["findings"]
                   if f["code"] == "training.search_resumed")
    assert killed.name in resumed["message"] and "trial(s) 1 interrupted there ran again" in resumed["message"]


def test_ftkit_run_refuses_a_search_without_optuna_before_any_phase():
    """The pre-flight names the missing package (Optuna hidden from the import system in a fresh interpreter)."""
    script = ("import sys\nsys.modules['optuna'] = None  # Python's way to make a package unimportable\n"
              "from ftkit.config import parse_config\nfrom ftkit.hardware_checks import hardware_problems\n"
              "c = parse_config({'training': {'search': {'enabled': True}}})\n"
              "print(hardware_problems(c, ['training'], gpus=0)); print(hardware_problems(c, ['baseline'], gpus=0))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert "needs Optuna" in lines[0] and "ftkit[search]" in lines[0], out.stderr
    assert lines[1] == "[]"
    from ftkit.config import parse_config
    from ftkit.hardware_checks import hardware_problems

    assert hardware_problems(parse_config({"training": {"search": {"enabled": True}}}), ["training"], gpus=0) == []
