"""The model card (huggingface_hub ``ModelCard`` with model-index metrics from the evaluation) and the handover
document: what is delivered (files with sha256), how to run it, what it costs, how it is monitored.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from ftkit.fsutil import atomic_write_text, sha256_file


def folder_digest(folder: str | Path) -> str:
    """One sha256 for a folder's files (names and contents), as ``ftkit.models.describe`` computes it."""
    from ftkit.models.describe import folder_files_sha256, folder_sha256

    return folder_sha256(folder_files_sha256(folder))


def version_pins(base: dict, trained, export: dict, chat_template_sha256: str) -> dict:
    """What a deployment must pin: base model identity, adapter and export hashes, template, ftkit version."""
    from ftkit import __version__

    pins = {"base_model": base.get("id", ""), "base_kind": base.get("kind", ""),
            "base_revision": base.get("revision", "") or "(not pinned)",
            "base_files_sha256": base.get("files_sha256", "") or "(hub model: pin the revision)"}
    if trained.kind == "adapter":
        pins["adapter_sha256"] = folder_digest(trained.weights_dir)
    if export.get("folder") and Path(export["folder"]).is_dir():
        pins[f"export_{export['kind']}_sha256"] = folder_digest(export["folder"])
    pins["chat_template_sha256"] = chat_template_sha256
    pins["ftkit_version"] = __version__
    return pins


def evaluation_summary(evaluation: dict) -> dict:
    """The verdict and per-metric rows (fine-tuned, baseline, difference, CI) from evaluation's results.json.

    Reads ``headline.verdict`` (or ``results.verdict.verdict``) and ``results.metrics`` (name -> row of
    ``ftkit.evaluation.paired.compare_statistics``); anything missing is left out, never guessed.
    """
    headline, results = evaluation.get("headline", {}), evaluation.get("results", {})
    verdict = headline.get("verdict")
    if not verdict:
        nested = results.get("verdict")
        verdict = nested.get("verdict") if isinstance(nested, dict) else nested
    rows = []
    for name, row in (results.get("metrics") or {}).items():
        if isinstance(row, dict) and isinstance(row.get("fine_tuned"), (int, float)):
            rows.append({"metric": name, "fine_tuned": row["fine_tuned"], "baseline": row.get("baseline"),
                         "diff": row.get("diff"), "diff_ci": row.get("diff_ci"), "significant": row.get("significant"),
                         "n": row.get("n")})
    return {"verdict": str(verdict or "unknown"), "headline_metric": headline.get("headline_metric", ""),
            "metrics": rows, "n_test": next((r["n"] for r in rows if r.get("n")), None)}


def build_model_card(config, summary: dict, export: dict, base: dict, reference: dict, model_name: str,
                     extra: dict | None = None):
    """A ``huggingface_hub.ModelCard`` (YAML metadata with model-index + markdown body from the template)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from ftkit.resources import templates_dir

    dataset = f"{config.client.slug or 'client'} test split"
    evals = [EvalResult(task_type="text-generation", dataset_type="private", dataset_name=dataset,
                        dataset_split="test", metric_type=r["metric"], metric_name=r["metric"],
                        metric_value=round(float(r["fine_tuned"]), 4)) for r in summary["metrics"]]
    base_id = base.get("id", "") if base.get("kind") == "hub" else None  # the hub only links hub ids
    data = ModelCardData(model_name=model_name, base_model=base_id, library_name="transformers",
                         tags=["ftkit", "fine-tuned", config.task.type, "lora" if export.get("kind") != "full" else "full"],
                         license="other", eval_results=evals or None)
    return ModelCard.from_template(
        data, template_path=str(templates_dir() / "serving" / "model_card.md.j2"), model_name=model_name,
        client=config.client.name or config.client.slug, objective=config.objective, task=config.task.type,
        base=base, summary=summary, export=export, reference=reference, method=config.training.method,
        date=_dt.date.today().isoformat(), **(extra or {}))


def delivered_files(run_dir: str | Path, folders: tuple[str, ...] = ("export", "serving", "monitoring")) -> list[dict]:
    """Every file of the handover bundle with its size and sha256 (relative to the run folder)."""
    run_dir = Path(run_dir)
    rows = []
    for name in folders:
        for path in sorted((run_dir / name).rglob("*")) if (run_dir / name).is_dir() else []:
            if path.is_file():
                rows.append({"file": path.relative_to(run_dir).as_posix(), "bytes": path.stat().st_size,
                             "sha256": sha256_file(path)})
    return rows


def write_handover(run_dir: str | Path, context: dict) -> Path:
    """handover.md in the run folder, from templates/serving/handover.md.j2 (context: see the notebook)."""
    from ftkit.deployment.serving_configs import render

    text = render("handover.md.j2", {"date": _dt.date.today().isoformat(),
                                     "files": delivered_files(run_dir), **context})
    return atomic_write_text(Path(run_dir) / "handover.md", text)
