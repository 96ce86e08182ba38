"""``training.search``: an Optuna search over the training hyperparameters, under a budget in USD or device-hours.

Before the final training, trials train on a seeded subset of the training split and are scored on validation loss
(the best one seen in the trial, nats/token). Optuna's TPE sampler (seeded with ``training.seed``) proposes each
trial; a median or successive-halving pruner stops a trial whose validation loss, reported at every evaluation
step, trails the others. The first trial is the default settings, so "best against default" is measured on the
same subset, steps and budget.

Evidence, all in the run folder's ``search/``: ``search.db`` (Optuna's SQLite storage: a killed search resumes
from it, ``ftkit verify`` hashes it with the run), ``trials.jsonl`` (one line per trial: settings, pruning
decision, wall time, cost), ``trial-NNN/metrics.jsonl`` (each trial's loss curve) and ``search_summary.json``.

Budget: cost = measured wall time x the device's hourly rate (``ftkit.cost_ledger``, ``templates/device_prices.yaml``).
Before each trial its time is estimated from the trials measured so far (the slowest seconds per step x its
planned steps, plus the largest fixed per-trial time); a trial whose estimate would take the search past
``budget_usd`` or ``budget_device_hours`` is not started, and the search says so.

A search killed mid-way (kill -9, a dead kernel) leaves its study in the interrupted run's folder; the next run of
the phase with the same data, model, template, space, pruner and subset copies that ``search/`` folder into its
own run folder (the earlier run's evidence is never changed) and finishes the study: finished trials are not
re-run, the interrupted one is marked failed and run again under a new number.

>>> budget_stop(spent_usd=0.8, spent_hours=0.5, estimate_usd=0.3, estimate_hours=0.1, budget_usd=1.0, budget_hours=0)
'the next trial (estimated $0.3000) would take the search to $1.1000 of its $1.0000 budget'
>>> budget_stop(0.5, 0.5, 0.3, 0.1, budget_usd=1.0, budget_hours=0)
''
"""
from __future__ import annotations

import json
import math
import shutil
import sqlite3
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftkit.errors import MissingDependency

SEARCH_DIR = "search"
STUDY_FILE = "search.db"
TRIALS_FILE = "trials.jsonl"
SUMMARY_FILE = "search_summary.json"
PRUNER_STARTUP_TRIALS = 2  # trials that must finish before the median pruner may stop one
PRUNER_WARMUP_STEPS = 1  # optimizer steps a trial runs before it may be pruned (step 0 = the untrained model)
STUDY_PREFIX = "ftkit-search-"
INSTALL = 'pip install "ftkit[search]"'
# What a trial may change; everything else is training's own setting.
SEARCHED = ("learning_rate", "lora_r", "lora_alpha", "epochs", "max_steps", "lora_dropout")
LOG_SCALE = {"learning_rate", "lora_r", "lora_alpha"}


def _optuna():
    try:
        import optuna
    except ImportError:
        raise MissingDependency("optuna", "training.search (hyperparameter search)", INSTALL) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# -- pure parts: the space, the settings of a trial, the budget ------------------------------------------------

def suggest(trial, space: dict[str, list]) -> dict:
    """The trial's values for the searched hyperparameters (``SearchSpace.searched()``)."""
    out = {}
    for name, (low, high) in space.items():
        if name in ("lora_r", "lora_alpha", "max_steps"):
            out[name] = trial.suggest_int(name, int(low), int(high), log=name in LOG_SCALE)
        else:
            out[name] = trial.suggest_float(name, float(low), float(high), log=name in LOG_SCALE)
    return out


def default_params(base, space: dict[str, list]) -> dict:
    """Training's own values of the searched hyperparameters: the first trial, the one "default" means."""
    return {name: getattr(base, name) for name in space}


def trial_settings(base, params: dict):
    """``base`` (ResolvedSettings) with the trial's values; one process, no early stopping (the pruner does that).

    When lora_r is searched and lora_alpha is not, alpha keeps training's alpha/r ratio.
    """
    changes = dict(params)
    if "lora_r" in params and "lora_alpha" not in params:
        changes["lora_alpha"] = max(1, round(base.lora_alpha / base.lora_r * params["lora_r"]))
    if "epochs" in params:
        changes["max_steps"] = 0
    changes.update(early_stopping_patience=0, num_processes=1, num_machines=1, distributed="none",
                   report_to="none")
    return base.replace(**changes)


def budget_stop(spent_usd: float, spent_hours: float, estimate_usd: float, estimate_hours: float,
                budget_usd: float, budget_hours: float) -> str:
    """Why the next trial must not start ('' = it may): its estimate would take the search past a budget."""
    if budget_usd > 0 and spent_usd + estimate_usd > budget_usd:
        return (f"the next trial (estimated ${estimate_usd:.4f}) would take the search to "
                f"${spent_usd + estimate_usd:.4f} of its ${budget_usd:.4f} budget")
    if budget_hours > 0 and spent_hours + estimate_hours > budget_hours:
        return (f"the next trial (estimated {estimate_hours:.4f} device-hours) would take the search to "
                f"{spent_hours + estimate_hours:.4f} of its {budget_hours:.4f} device-hours")
    return ""


def engagement_cap(search_usd: float, total_usd: float, spent_usd: float) -> tuple[float, str]:
    """(the search's USD budget, why it was capped or ''): never more than what is left of budget.total_usd.

    >>> engagement_cap(5.0, 0.0, 3.0), engagement_cap(5.0, 100.0, 3.0)
    ((5.0, ''), (5.0, ''))
    >>> engagement_cap(0.0, 10.0, 4.0)[0], engagement_cap(8.0, 10.0, 4.0)[0]
    (6.0, 6.0)
    """
    if total_usd <= 0:
        return search_usd, ""
    left = max(0.0, total_usd - spent_usd)
    if search_usd > 0 and search_usd <= left:
        return search_usd, ""
    return left, (f"what is left of budget.total_usd: ${left:,.4f} of ${total_usd:,.2f} after ${spent_usd:,.4f} "
                  f"spent by earlier runs")


def estimate_seconds(measured: list[dict], steps: int) -> float | None:
    """Wall seconds a trial of ``steps`` optimizer steps will take, from the trials measured so far (None: none yet).

    Conservative on purpose: the slowest training seconds per step seen, and the largest fixed time (model load,
    first evaluation, bookkeeping), so that a budget is not overrun by an optimistic guess.
    """
    done = [m for m in measured if m.get("steps_done")]
    if not done:
        return None
    per_step = max(m["train_seconds"] / m["steps_done"] for m in done)
    fixed = max(max(0.0, m["wall_seconds"] - m["train_seconds"]) for m in done)
    return per_step * steps + fixed


def study_key(fingerprint: str, search: dict) -> str:
    """The study's name: the trajectory fingerprint (data, model, template, settings) plus what shapes the
    trials (space, pruner, subset). Trials, budgets and apply may change without starting over."""
    import hashlib

    shape = {k: search[k] for k in ("space", "pruner", "subset")}
    digest = hashlib.sha256(json.dumps({"fp": fingerprint, **shape}, sort_keys=True).encode()).hexdigest()
    return STUDY_PREFIX + digest[:20]


def study_name_in(db: Path) -> str:
    """The study name stored in an Optuna SQLite file, read-only (an earlier run's evidence is never written)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT study_name FROM studies LIMIT 1").fetchone()
    except sqlite3.Error:
        return ""
    return row[0] if row else ""


def find_interrupted_study(engagement, key: str, exclude_run: str) -> Path | None:
    """The ``search/`` folder of the newest interrupted training run holding this study, or None."""
    from ftkit.training.resume import RESUMABLE_STATUSES, _run_status

    for run_id in sorted(engagement.run_ids("training"), reverse=True):
        run_dir = engagement.runs_dir("training") / run_id
        if run_id == exclude_run or _run_status(run_dir) not in RESUMABLE_STATUSES:
            continue
        db = run_dir / SEARCH_DIR / STUDY_FILE
        if db.is_file() and study_name_in(db) == key:
            return db.parent
    return None


# -- the study ------------------------------------------------------------------------------------------------

@dataclass
class SearchJob:
    """What the study needs (JSON-serialisable, so a test or a worker process can run it from a file)."""

    folder: str  # <run>/search
    base_settings: dict  # ResolvedSettings.to_dict() of the final training
    search: dict  # asdict(SearchSettings)
    study_name: str
    model_path: str
    eot_id: int | None
    model_revision: str = ""
    trust_remote_code: bool = False
    chat_template: str | None = None
    added_tokens: list = field(default_factory=list)
    device: str = "cpu"  # cost_ledger.current_device()
    prices: str = ""  # device price table path ("" = shipped)
    progress: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SearchJob":
        return cls(**json.loads(text))


def _resolved(settings: dict):
    from ftkit.training.settings import ResolvedSettings

    values = dict(settings)
    tm = values.get("target_modules")
    values["target_modules"] = () if tm == "all-linear" else tuple(tm or ())
    return ResolvedSettings(**values)


def _pruner(optuna, name: str):
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_STEPS)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def open_study(job: SearchJob):
    """Create or load the study in ``<folder>/search.db``; trials a killed process left RUNNING become FAIL."""
    optuna = _optuna()
    folder = Path(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{(folder / STUDY_FILE).resolve()}")
    sampler = optuna.samplers.TPESampler(seed=int(job.base_settings["seed"]))
    study = optuna.create_study(storage=storage, sampler=sampler, pruner=_pruner(optuna, job.search["pruner"]),
                                study_name=job.study_name, direction="minimize", load_if_exists=True)
    interrupted = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # only this process holds the engagement lock: a RUNNING trial is one a killed process left behind.
        # (FrozenTrial._trial_id is the storage key; Optuna has no public call for "fail this stale trial now".)
        storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
        interrupted.append(t.number)
    return study, interrupted


def _base_model_once(job: SearchJob, base):
    """The base model, loaded once for every trial (each trains a deep copy), on the CPU only: there host memory
    holds the second copy easily, while on a GPU it would double what the memory estimate allows for. None (load
    per trial) on a GPU and for QLoRA, whose bitsandbytes 4-bit tensors are not meant to be deep-copied."""
    from ftkit.models.loading import pick_device

    if base.method == "qlora" or pick_device() != "cpu":
        return None
    from ftkit.training.trainer import TrainingJob, load_training_model

    probe = TrainingJob(job.model_path, base.to_dict(), {}, job.folder, "", job.eot_id,
                        model_revision=job.model_revision, trust_remote_code=job.trust_remote_code)
    return load_training_model(probe, pick_device())


def finished_trials(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _pruning_callback(trial, should_prune_allowed: bool = True):
    from transformers import TrainerCallback

    class Pruning(TrainerCallback):
        """Reports validation loss at every evaluation step to Optuna; stops the trial when the pruner says so."""

        def __init__(self):
            self.evals: list[tuple[int, float]] = []
            self.pruned_at: int | None = None

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            loss = (metrics or {}).get("eval_loss")
            if loss is None or not math.isfinite(loss):
                return control
            step = int(state.global_step)
            if any(s == step for s, _ in self.evals):
                return control
            self.evals.append((step, float(loss)))
            trial.report(float(loss), step)
            if should_prune_allowed and trial.should_prune():
                self.pruned_at = step
                control.should_training_stop = True
            return control

    return Pruning()


def run_study(job: SearchJob, train_sequences, eval_sequences, log=print) -> dict:
    """Run trials until ``trials`` have finished or the budget stops the next one. Returns the summary dict."""
    _optuna()  # MissingDependency with the install command before anything is loaded
    from optuna.trial import TrialState

    from ftkit.cost_ledger import load_device_prices, run_cost
    from ftkit.training.settings import plan_steps
    from ftkit.training.trainer import TrainingJob, run_training

    setup_started = time.perf_counter()
    base = _resolved(job.base_settings)
    space = {k: v for k, v in job.search["space"].items() if v}
    study, interrupted = open_study(job)
    model = _base_model_once(job, base)
    rate = load_device_prices(job.prices or None).rate_for(job.device)
    folder = Path(job.folder)
    if not any(t.user_attrs.get("default") for t in finished_trials(study)) and not \
            study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        with warnings.catch_warnings():  # a default outside the bounds is still the default: tried as it is
            warnings.simplefilter("ignore")
            study.enqueue_trial(default_params(base, space), user_attrs={"default": True})
    stopped = ""
    setup_seconds, bookkeeping = time.perf_counter() - setup_started, []
    while len(finished_trials(study)) < job.search["trials"]:
        loop_started = time.perf_counter()
        measured = [_measured(t) for t in finished_trials(study)]
        spent_s = sum(m.get("wall_seconds", 0.0) for m in measured)
        spent = run_cost(spent_s, rate)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = study.ask()
            params = suggest(trial, space)
        settings = trial_settings(base, params)
        plan = plan_steps(settings, len(train_sequences))
        estimate = estimate_seconds(measured, plan.total_steps)
        if estimate is not None:
            guess = run_cost(estimate, rate)
            stopped = budget_stop(spent["cost_usd"], spent["device_hours"], guess["cost_usd"], guess["device_hours"],
                                  job.search["budget_usd"], job.search["budget_device_hours"])
            if stopped:
                trial.set_user_attr("not_started", stopped)
                study.tell(trial, state=TrialState.FAIL)
                log(f"search: trial {trial.number} not started: {stopped}")
                break
        trial_dir = folder / f"trial-{trial.number:03d}"
        shutil.rmtree(trial_dir, ignore_errors=True)  # a number is used once; a copied interrupted folder is replaced
        trial_dir.mkdir(parents=True)
        tjob = TrainingJob(job.model_path, settings.to_dict(), plan.to_dict(), str(trial_dir), "", job.eot_id,
                           model_revision=job.model_revision, trust_remote_code=job.trust_remote_code,
                           progress=job.progress, extra={"trial": True, "chat_template": job.chat_template,
                                                         "added_tokens": list(job.added_tokens)})
        pruning = _pruning_callback(trial)
        t0 = time.perf_counter()
        outcome = run_training(tjob, train_sequences, eval_sequences, callbacks=[pruning], base_model=model)
        wall = time.perf_counter() - t0
        cost = run_cost(wall, rate)
        best = min((loss for _, loss in pruning.evals), default=float("nan"))
        attrs = {"wall_seconds": round(wall, 3), "train_seconds": round(outcome["train_seconds"], 3),
                 "steps_done": int(outcome["global_step"]), "steps_planned": plan.total_steps,
                 "cost_usd": cost["cost_usd"], "device_hours": cost["device_hours"], "pruned_at_step": pruning.pruned_at,
                 "best_val_loss": best if math.isfinite(best) else None, "settings": {k: getattr(settings, k) for k in SEARCHED}}
        trial.set_user_attr("measured", attrs)  # one attribute: one SQLite transaction, not one per value
        pruned = pruning.pruned_at is not None
        if pruned:
            study.tell(trial, state=TrialState.PRUNED)
        elif math.isfinite(best):
            study.tell(trial, best)
        else:
            study.tell(trial, state=TrialState.FAIL)
        line = {"number": trial.number, "state": "pruned" if pruned else ("complete" if math.isfinite(best) else "fail"),
                "default": bool(trial.user_attrs.get("default")), "params": params, **attrs,
                "validation_curve": pruning.evals}
        with open(folder / TRIALS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
        line_book = (t0 - loop_started) + (time.perf_counter() - (t0 + wall))  # ask + tell, attribute, jsonl
        bookkeeping.append(round(line_book, 4))
        log(f"search: trial {trial.number} {line['state']}: best validation loss {best:.4f} in {wall:.1f} s "
            f"(${cost['cost_usd']:.4f})")
    summary = summarise(study, rate, stopped, interrupted, folder)
    # the study's own time: set-up once (storage, base model), and per trial outside run_training (ask, tell, files)
    summary["overhead"] = {"setup_seconds": round(setup_seconds, 3), "bookkeeping_seconds": bookkeeping}
    return summary


def summarise(study, rate, stopped: str, interrupted: list[int], folder: Path) -> dict:
    """search_summary.json: every trial, the best and the default trial, spend, importance, why it stopped."""
    from optuna.trial import TrialState

    from ftkit.cost_ledger import run_cost
    from ftkit.fsutil import atomic_write_json

    rows = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    done = [r for r in rows if r["state"] in ("complete", "pruned")]
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    best = min(complete, key=lambda t: t.value) if complete else None
    default = next((r for r in rows if r["default"] and r["state"] in ("complete", "pruned")), None)
    spent = run_cost(sum(r["wall_seconds"] or 0.0 for r in done), rate)
    summary = {"study": study.study_name, "trials": rows, "finished": len(done),
               "pruned": sum(r["state"] == "pruned" for r in rows),
               "best": trial_row(best) if best else None, "default": default,
               "importance": importance(study), "stopped_by_budget": stopped, "interrupted_trials": interrupted,
               "spent": spent, "rate": rate.to_dict(), "files": {"study": f"{SEARCH_DIR}/{STUDY_FILE}",
                                                                 "trials": f"{SEARCH_DIR}/{TRIALS_FILE}"}}
    atomic_write_json(folder / SUMMARY_FILE, summary)
    return summary


def _measured(t) -> dict:
    return t.user_attrs.get("measured") or {}


def trial_row(t) -> dict:
    a = {**t.user_attrs, **_measured(t)}
    state = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "fail", "RUNNING": "running",
             "WAITING": "waiting"}[t.state.name]
    if state == "fail" and a.get("not_started"):
        state = "not started"
    elif state == "fail" and a.get("interrupted"):
        state = "interrupted"
    best = a.get("best_val_loss")
    return {"number": t.number, "state": state, "default": bool(a.get("default")), "params": dict(t.params),
            "best_val_loss": best if isinstance(best, float) and math.isfinite(best) else None,
            "steps_done": a.get("steps_done"), "steps_planned": a.get("steps_planned"),
            "pruned_at_step": a.get("pruned_at_step"), "wall_seconds": a.get("wall_seconds"),
            "train_seconds": a.get("train_seconds"), "cost_usd": a.get("cost_usd"), "settings": a.get("settings", {}),
            "why_not_started": a.get("not_started", "")}


def importance(study) -> dict:
    """{hyperparameter: share (0-1)} from optuna.importance (PED-ANOVA); {} with too few completed trials."""
    optuna = _optuna()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


# -- the notebook section ------------------------------------------------------------------------------------

def search_subset(examples: list, n: int, seed: int) -> list:
    """The first ``n`` examples of a seeded shuffle (0 = all, in the audit's order)."""
    import random

    if n <= 0 or n >= len(examples):
        return list(examples)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    return [examples[i] for i in sorted(order[:n])]


def search_section(run, s, d, fingerprint: str, progress: bool = True):
    """The training phase's search section. value: (inputs, data) to train with (the best trial's settings when
    ``apply``; training's own otherwise, or when the search is off)."""
    import dataclasses

    from ftkit.section import Section, finding

    cfg = run.config.training.search
    if not cfg.enabled:
        return Section(value=(s, d)).add(finding(
            "info", "training.search_off", "No hyperparameter search: the settings above are trained as they are "
            "(training.search.enabled: false).", ""))
    from ftkit.cost_ledger import ledger

    spent = ledger(run.engagement)["total_usd"]  # earlier runs of this engagement (this one is still running)
    budget_usd, capped = engagement_cap(cfg.budget_usd, run.config.budget.total_usd, spent)
    if capped and budget_usd <= 0:
        return Section(value=(s, d)).add(finding(
            "warning", "training.search_no_budget", f"No hyperparameter search: {capped}.",
            "Raise budget.total_usd, or turn training.search off."))
    cfg = dataclasses.replace(cfg, budget_usd=budget_usd)
    job, train_seqs, resumed_from = prepare_job(run, s, d, cfg, fingerprint)
    summary = run_study(job, train_seqs, d.eval_sequences, log=print if progress else (lambda *_: None))
    summary.update(resumed_from=resumed_from, subset_examples=sum(len(q) for q in train_seqs), target=cfg.trials,
                   budget_capped=capped,
                   apply=cfg.apply, budget_usd=cfg.budget_usd, budget_device_hours=cfg.budget_device_hours)
    new_s, new_d = s, d
    best = summary["best"]
    if cfg.apply and best and not best["default"]:
        chosen = {k: best["settings"][k] for k in SEARCHED if k in best["settings"]}
        sources = {**s.settings.sources, **{k: f"search trial {best['number']}" for k in best["params"]}}
        settings = dataclasses.replace(s.settings, **chosen, sources=sources)
        from ftkit.training.settings import plan_steps

        new_s = dataclasses.replace(s, settings=settings)
        new_d = dataclasses.replace(d, plan=plan_steps(settings, len(d.train_sequences)))
    summary["applied"] = new_s is not s
    run.write_json(f"{SEARCH_DIR}/{SUMMARY_FILE}", summary)
    new_s.search = results_view(summary)
    sec = Section(value=(new_s, new_d))
    sec.table(trials_table(summary), caption="Trials (validation loss in nats/token; lower is better)")
    if summary["importance"]:
        sec.table([{"hyperparameter": k, "importance": v} for k, v in summary["importance"].items()],
                  caption="Hyperparameter importance (optuna.importance, PED-ANOVA; shares of 1)")
    sec.table(best_vs_default(summary), caption="Best trial against the default settings")
    sec.figures.append(("search_trials", trials_figure(summary, Path(job.folder))))
    return sec.add(*search_findings(summary))


def prepare_job(run, s, d, cfg, fingerprint: str):
    """(SearchJob, the subset's training sequences, the interrupted run resumed from or None)."""
    from ftkit import cost_ledger
    from ftkit.training.packing import build_sequences

    st = s.settings
    search = asdict(cfg)
    key = study_key(fingerprint, search)
    folder = run.run_dir / SEARCH_DIR
    resumed_from = None
    earlier = find_interrupted_study(run.engagement, key, run.run_id)
    if earlier is not None and not (folder / STUDY_FILE).exists():
        shutil.copytree(earlier, folder, dirs_exist_ok=True)
        run.record_input(earlier / STUDY_FILE)
        resumed_from = earlier.parent.name
    examples = search_subset(d.train.examples, cfg.subset, st.seed)
    train_seqs = build_sequences(examples, st.max_seq_length, st.packing, st.seed)
    prices = cost_ledger.prices_path(run.engagement.path)
    run.record_input(prices)
    cached = getattr(s.tokenizer, "_ftkit_chat_plan", None)
    job = SearchJob(str(folder), st.to_dict(), search, key, s.source.path, s.eot_id,
                    model_revision=s.source.revision, trust_remote_code=s.source.trust_remote_code,
                    chat_template=s.tokenizer.chat_template, added_tokens=list(cached[1].added_tokens) if cached else [],
                    device=cost_ledger.current_device(), prices=str(prices), progress=False)
    return job, train_seqs, resumed_from


def results_view(summary: dict) -> dict:
    """What TrainingResults.search keeps: the decision and its numbers (the trials stay in search/)."""
    best, default = summary["best"] or {}, summary["default"] or {}
    return {"finished": summary["finished"], "pruned": summary["pruned"], "best_trial": best.get("number"),
            "best_params": best.get("params"), "best_val_loss": best.get("best_val_loss"),
            "default_val_loss": default.get("best_val_loss"), "applied": summary["applied"],
            "stopped_by_budget": summary["stopped_by_budget"], "resumed_from": summary.get("resumed_from"),
            "cost_usd": summary["spent"]["cost_usd"], "device_hours": summary["spent"]["device_hours"],
            "importance": summary["importance"], "files": {**summary["files"], "summary": f"{SEARCH_DIR}/{SUMMARY_FILE}"}}


def trials_table(summary: dict) -> list[dict]:
    rows = []
    for r in summary["trials"]:
        rows.append({"trial": r["number"], "state": r["state"] + (" (default settings)" if r["default"] else ""),
                     **{k: _short(v) for k, v in r["params"].items()},
                     "best validation loss": _short(r["best_val_loss"]),
                     "steps": f"{r['steps_done']}/{r['steps_planned']}" if r["steps_planned"] else "",
                     "pruned at step": r["pruned_at_step"] if r["pruned_at_step"] is not None else "",
                     "wall s": _short(r["wall_seconds"]), "cost USD": _short(r["cost_usd"])})
    return rows


def _short(value):
    if isinstance(value, float):
        return float(f"{value:.4g}")
    return "" if value is None else value


def best_vs_default(summary: dict) -> list[dict]:
    best, default = summary["best"], summary["default"]
    if not best:
        return []
    names = sorted(set(best["settings"]) | set((default or {}).get("settings", {})))
    rows = [{"": name, "default": _short((default or {}).get("settings", {}).get(name)),
             "best trial": _short(best["settings"].get(name))} for name in names]
    rows.append({"": "best validation loss", "default": _short((default or {}).get("best_val_loss")),
                 "best trial": _short(best["best_val_loss"])})
    return rows


def search_findings(summary: dict) -> list:
    from ftkit.section import finding

    rate, spent = summary["rate"], summary["spent"]
    out = [finding("info", "training.search_trials", f"{summary['finished']} trial(s) finished ({summary['pruned']} "
                   f"pruned on validation loss) on {summary.get('subset_examples', 0):,} training examples, "
                   f"{spent['wall_seconds'] / 60:.1f} min = {spent['device_hours']:.4f} device-hours, "
                   f"${spent['cost_usd']:.4f} at {rate['name']} ${rate['hourly_usd']:g}/h (prices of {rate['as_of']}).", "")]
    if summary.get("budget_capped"):
        out.append(finding("info", "training.search_capped", f"The search's budget was capped at "
                           f"${summary['budget_usd']:,.4f}: {summary['budget_capped']}.", ""))
    if summary.get("resumed_from"):
        again = summary.get("interrupted_trials") or []
        out.append(finding("info", "training.search_resumed", f"The search resumed the study of interrupted run "
                           f"{summary['resumed_from']}: its finished trials were kept, not re-run"
                           + (f"; trial(s) {', '.join(map(str, again))} interrupted there ran again under new numbers."
                              if again else "."), ""))
    if summary["stopped_by_budget"]:
        out.append(finding("warning", "training.search_budget", f"The search stopped after {summary['finished']} of "
                           f"{summary.get('target', summary['finished'])} trials: {summary['stopped_by_budget']}, so "
                           f"that trial was not started.",
                           "Raise training.search.budget_usd / budget_device_hours, or lower trials or subset."))
    best, default = summary["best"], summary["default"]
    if not best:
        out.append(finding("warning", "training.search_no_result", "No trial completed (all were pruned or failed), "
                           "so training keeps its own settings.", "Widen the space or raise the trial steps."))
        return out
    b, d = best["best_val_loss"], (default or {}).get("best_val_loss")
    versus = f" against {d:.4f} with the default settings" if isinstance(d, float) else ""
    action = ("the final training uses them" if summary.get("applied") else
              "kept as they are" if best["default"] else "recommended only (training.search.apply: false)")
    what = "the default settings" if best["default"] else \
        ", ".join(f"{k} = {_short(v)}" for k, v in best["params"].items())
    out.append(finding("info", "training.search_best", f"Best: trial {best['number']} ({what}), validation loss "
                       f"{b:.4f}{versus}; {action}.", ""))
    if summary["importance"]:
        top = next(iter(summary["importance"].items()))
        out.append(finding("info", "training.search_importance", f"{top[0]} mattered most in this search "
                           f"({100 * top[1]:.0f} % of the explained variation in validation loss).", ""))
    return out


def trials_figure(summary: dict, folder: Path):
    """Validation loss against step for every trial (pruned ones dashed); the best trial bold."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    best = (summary["best"] or {}).get("number")
    for line in trial_lines(folder):
        steps, losses = zip(*line["validation_curve"]) if line["validation_curve"] else ((), ())
        ax.plot(steps, losses, ls="--" if line["state"] == "pruned" else "-", lw=2.5 if line["number"] == best else 1,
                label=f"trial {line['number']}" + (" (default)" if line["default"] else ""))
    ax.set(xlabel="optimizer step", ylabel="validation loss (nats/token)", title="Search trials")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def trial_lines(folder: Path) -> list[dict]:
    """The lines of ``trials.jsonl`` (one per trial that ran to its end or was pruned)."""
    path = Path(folder) / TRIALS_FILE
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
