"""Pre-flight: settings this machine cannot run, refused by ``ftkit run`` before any phase starts.

``baseline.backend: vllm`` without the vllm package or a CUDA GPU, and ``training.distributed: fsdp | deepspeed``
on a machine that cannot run them (see ``ftkit.training.distributed.check_plan``), are refused here with a
one-line reason each, instead of after an hour of earlier phases. torch is imported only when such a setting is
used (``ftkit run`` on a default engagement stays as fast as before).
"""
from __future__ import annotations

from ftkit.errors import FtkitError

GENERATING_PHASES = ("baseline", "evaluation")  # the phases that generate with baseline.backend


def generation_backend(config, engagement=None, phase: str = "baseline") -> str:
    """The backend a phase will generate with: the evaluation repeats what its baseline recorded."""
    if phase == "evaluation" and engagement is not None:
        from ftkit.fsutil import read_json

        run_dir = engagement.latest_run_dir("baseline")
        results = run_dir / "results.json" if run_dir else None
        if results is not None and results.is_file():
            recorded = read_json(results).get("results", {}).get("generation", {}).get("backend")
            if recorded:
                return str(recorded)
    return config.baseline.backend


def hardware_problems(config, phases: list[str], engagement=None, gpus: int | None = None) -> list[str]:
    """One line per setting of ``config`` that the ``phases`` about to run cannot use on this machine."""
    problems = []
    if any(generation_backend(config, engagement, p) == "vllm" for p in phases if p in GENERATING_PHASES):
        from ftkit.generation.vllm_backend import unavailable_reason

        reason = unavailable_reason(cuda=None if gpus is None else gpus > 0)
        if reason:
            problems.append(reason)
    t = config.training
    if "training" in phases and (t.distributed != "none" or t.accelerate_config):
        from ftkit.training.distributed import check_plan, plan_from_settings

        if gpus is None:
            from ftkit.training.launch import visible_gpus

            gpus = visible_gpus()
        try:
            check_plan(plan_from_settings(t, t.accelerate_config), gpus)
        except FtkitError as err:
            problems.append(str(err))
    if "training" in phases and t.search.enabled:
        import importlib.util

        if importlib.util.find_spec("optuna") is None:
            problems.append('training.search.enabled needs Optuna, which is not installed: pip install "ftkit[search]"')
    return problems


def refuse_unrunnable(config, phases: list[str], engagement=None) -> None:
    problems = hardware_problems(config, phases, engagement)
    if problems:
        raise FtkitError("This machine cannot run these settings:\n" + "\n".join(f"  - {p}" for p in problems))
