"""After training: the loss history, the overfitting flag, the loss-curve figure, the summary and the findings.

Everything here works on plain numbers (the metrics log, the outcome of ``run_training``), so it is tested
without training anything.

>>> h = loss_history([{"step": 0, "eval_loss": 2.0}, {"step": 1, "loss": 2.1}, {"step": 2, "eval_loss": 1.5}])
>>> [v["eval_loss"] for v in h["validation"]]
[2.0, 1.5]
"""
from __future__ import annotations

from pathlib import Path

RISE = 0.02  # validation loss this far (relative) above its best counts as rising
FALL = 0.03  # a fall smaller than this is "flat"
REAL_TOKEN_WARN = 0.95  # share (0-1) of processed tokens that are real (not padding) below which throughput warns
_TRAIN_KEYS = ("loss", "learning_rate", "grad_norm")


def loss_history(entries: list[dict], resumed_from: dict | None = None) -> dict:
    """``{"train": [...], "validation": [...], "resumed_from": ...}`` from metrics-log entries (one per step each)."""
    train, val = {}, {}
    for e in entries:
        step = int(e.get("step", 0))
        if "loss" in e:
            train[step] = {"step": step, "epoch": e.get("epoch"), **{k: e[k] for k in _TRAIN_KEYS if k in e}}
        if "eval_loss" in e:
            val[step] = {"step": step, "epoch": e.get("epoch"), "eval_loss": e["eval_loss"]}
    return {"train": [train[k] for k in sorted(train)], "validation": [val[k] for k in sorted(val)],
            "resumed_from": resumed_from}


def best_checkpoint(validation: list[dict]) -> dict:
    """The validation point of the model kept: the lowest loss among trained steps (step 0 is the base model,
    which has no checkpoint), or step 0 when nothing was trained yet."""
    trained = [v for v in validation if v["step"] > 0] or validation
    return min(trained, key=lambda v: v["eval_loss"])


def _mean_train(history: dict, lo: int, hi: int) -> float | None:
    """Mean training loss over steps in (lo, hi]."""
    values = [t["loss"] for t in history["train"] if lo < t["step"] <= hi]
    return sum(values) / len(values) if values else None


def overfitting(history: dict) -> dict:
    """Flag when validation loss rose above its best while training loss kept falling.

    >>> h = {"train": [{"step": s, "loss": 2 - s / 10} for s in range(1, 11)],
    ...      "validation": [{"step": 0, "eval_loss": 2.0}, {"step": 4, "eval_loss": 1.5}, {"step": 10, "eval_loss": 1.8}]}
    >>> overfitting(h)["flag"], overfitting(h)["best_step"]
    (True, 4)
    """
    val = history["validation"]
    out = {"flag": False, "best_step": None, "best_val_loss": None, "last_val_loss": None}
    if not val:
        return out
    best = best_checkpoint(val)
    last = val[-1]
    out.update(best_step=best["step"], best_val_loss=best["eval_loss"], last_val_loss=last["eval_loss"])
    if last["step"] == best["step"] or last["eval_loss"] <= best["eval_loss"] * (1 + RISE):
        return out
    window = max(1, (last["step"] - best["step"]) // 4)  # steps of training loss averaged on each side
    at_best = _mean_train(history, best["step"] - window, best["step"])
    at_last = _mean_train(history, last["step"] - window, last["step"])
    if at_best is not None and at_last is not None and at_last < at_best:
        out.update(flag=True, train_loss_at_best=at_best, train_loss_at_last=at_last)
    return out


def loss_figure(history: dict, title: str = "Loss"):
    """Training loss (line) and validation loss (markers); the best step and a resume point marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    if history["train"]:
        ax.plot([t["step"] for t in history["train"]], [t["loss"] for t in history["train"]], color="#2980b9",
                lw=1.2, label="training loss")
    if history["validation"]:
        ax.plot([v["step"] for v in history["validation"]], [v["eval_loss"] for v in history["validation"]], "o-",
                color="#c0392b", label="validation loss")
        best = best_checkpoint(history["validation"])
        ax.axvline(best["step"], color="#27ae60", ls=":", label=f"best (step {best['step']})")
    if history.get("resumed_from"):
        ax.axvline(history["resumed_from"]["step"], color="#8e44ad", ls="--",
                   label=f"resumed (step {history['resumed_from']['step']})")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (assistant tokens)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def folder_size_mb(folder: Path, suffix: str = ".safetensors") -> float:
    return sum(p.stat().st_size for p in Path(folder).glob(f"*{suffix}")) / 1024 ** 2


def training_summary(outcome: dict, history: dict, estimate_gb: float, method: str, final_dir: Path) -> dict:
    """training_summary.json: time, tokens, throughput, memory, parameters, output size, validation losses."""
    tokens = outcome["tokens"]
    seconds = outcome["train_seconds"]
    val = history["validation"]
    best = best_checkpoint(val) if val else None
    trainable, total = outcome["trainable_parameters"], outcome["total_parameters"]
    return {
        "method": method, "device": outcome["device"], "processes": outcome["processes"],
        "train_seconds": round(seconds, 1), "train_minutes": round(seconds / 60, 2),
        "steps": outcome["global_step"], "planned_steps": outcome["max_steps"], "epochs": round(outcome["epoch"] or 0, 3),
        "stopped_early": outcome["stopped_early"],
        "processed_tokens": tokens["processed"], "real_tokens": tokens["real"], "label_tokens": tokens["labels"],
        "real_token_fraction": round(tokens["real"] / tokens["processed"], 4) if tokens["processed"] else 1.0,
        "real_tokens_per_s": round(tokens["real"] / seconds, 1) if seconds else 0.0,
        "peak_memory_gb": round(outcome["peak_memory_gb"], 3), "memory_estimate_gb": round(estimate_gb, 3),
        "trainable_parameters": trainable, "total_parameters": total,
        "trainable_percent": round(100.0 * trainable / total, 4) if total else 0.0,
        "output_folder": final_dir.name, "output_size_mb": round(folder_size_mb(final_dir), 3),
        "initial_val_loss": val[0]["eval_loss"] if val else None,
        "best_val_loss": best["eval_loss"] if best else None, "best_step": best["step"] if best else None,
        "final_val_loss": best["eval_loss"] if best else None,  # the best checkpoint is the model kept
        "last_val_loss": val[-1]["eval_loss"] if val else None,
        "resumed_from": history.get("resumed_from"),
    }


# -- findings (severity, code, message, next step) --------------------------------------------------------------

def loss_findings(summary: dict, flag: dict) -> list[tuple]:
    out = []
    first, best, best_step = summary["initial_val_loss"], summary["best_val_loss"], summary["best_step"]
    if first is None or best is None:
        out.append(("warning", "training.no_validation", "No validation loss was measured (empty validation split).",
                    "Give the data audit a validation share (data.split.validation) so training can be checked."))
    else:
        drop = (first - best) / first if first else 0.0
        if drop >= FALL:
            out.append(("info", "training.val_loss", f"Validation loss fell from {first:.3f} before training to "
                        f"{best:.3f} at step {best_step} ({100 * drop:.1f} % lower); that checkpoint is the model "
                        f"kept.", ""))
        else:
            out.append(("warning", "training.val_loss_flat", f"Validation loss did not fall clearly: {first:.3f} before "
                        f"training, {best:.3f} at best ({100 * -drop:+.1f} %). The model learned little from this data.",
                        "Train longer (training.epochs / max_steps) or with a higher learning_rate, and check the "
                        "data audit's label coverage."))
    if flag["flag"]:
        epochs_hint = f" (about {summary['epochs'] * best_step / max(1, summary['steps']):.1f} epochs)"
        out.append(("warning", "training.overfitting", f"Overfitting: validation loss rose from "
                    f"{flag['best_val_loss']:.3f} at step {flag['best_step']} to {flag['last_val_loss']:.3f} while training loss fell from "
                    f"{flag['train_loss_at_best']:.3f} to {flag['train_loss_at_last']:.3f}. The step-{flag['best_step']} "
                    f"checkpoint was kept.", f"Next time set training.max_steps: {flag['best_step']}{epochs_hint}, or "
                    f"add data."))
    elif best is not None:
        out.append(("info", "training.no_overfitting", "No overfitting: validation loss did not rise above its best "
                    f"while training loss fell.", ""))
    if summary["stopped_early"]:
        out.append(("info", "training.early_stopping", f"Early stopping ended training at step {summary['steps']} of "
                    f"{summary['planned_steps']}: validation loss stopped improving.", ""))
    return out


def throughput_findings(summary: dict, packing: dict) -> list[tuple]:
    how = "packed without padding" if packing["mode"] == "packed" else "length-grouped batches"
    frac = summary["real_token_fraction"]
    out = [("info" if frac >= REAL_TOKEN_WARN else "warning", "training.throughput",
            f"Trained {summary['steps']} steps in {summary['train_minutes']:.1f} min on {summary['real_tokens']:,} real "
            f"tokens ({100 * frac:.1f} % of the {summary['processed_tokens']:,} processed; {how}): "
            f"{summary['real_tokens_per_s']:,.0f} real tokens/s on {summary['processes']} {summary['device']} process(es).",
            "" if frac >= REAL_TOKEN_WARN else "Turn training.packing on so no compute is spent on padding.")]
    ratio = summary["peak_memory_gb"] / summary["memory_estimate_gb"] if summary["memory_estimate_gb"] else 0
    out.append(("info", "training.memory", f"Peak memory {summary['peak_memory_gb']:.2f} GB against an estimate of "
                f"{summary['memory_estimate_gb']:.2f} GB ({100 * ratio:.0f} %); {summary['trainable_parameters']:,} "
                f"trainable parameters ({summary['trainable_percent']:.2f} % of {summary['total_parameters']:,}); "
                f"{summary['output_folder']}/ is {summary['output_size_mb']:.1f} MB.", ""))
    return out


def tell_client(summary: dict, flag: dict, base_model: str, n_train: int, tiny: bool) -> str:
    if tiny:
        return ("This run only tested the training pipeline on a randomly initialised test model; it says nothing "
                "about the quality a real model would reach.")
    method = {"lora": "LoRA", "qlora": "QLoRA (4-bit base model)", "full": "full fine-tuning"}[summary["method"]]
    text = (f"We fine-tuned {base_model} with {method} on {n_train:,} of your examples in "
            f"{summary['train_minutes']:.0f} minutes.")
    if summary["best_val_loss"] is not None:
        text += (f" On held-out validation examples its loss fell from {summary['initial_val_loss']:.2f} to "
                 f"{summary['best_val_loss']:.2f}.")
    if flag["flag"]:
        text += " It started to memorise the training data late in training; we kept the best earlier checkpoint."
    return text + " Whether it beats the current prompt-only approach is measured next, on the untouched test set."


def next_steps(summary: dict, flag: dict, slug: str, tiny: bool) -> list[str]:
    steps = [f"Run the evaluation phase: ftkit run {slug} --phase evaluation"]
    if tiny:
        steps.insert(0, "Set base_model.id to the client's real base model and re-run training.")
    if flag["flag"]:
        steps.append(f"For the next iteration set training.max_steps: {flag['best_step']} or add more data.")
    if summary["best_val_loss"] is not None and summary["initial_val_loss"] and \
            (summary["initial_val_loss"] - summary["best_val_loss"]) / summary["initial_val_loss"] < FALL:
        steps.append("Validation loss barely fell: raise training.learning_rate or epochs before evaluating.")
    return steps


def one_line(summary: dict, base_model: str) -> str:
    """results.json's summary sentence.

    >>> one_line({"method": "lora", "initial_val_loss": 1.63086, "final_val_loss": 0.10393, "train_minutes": 5.47}, "m")
    'lora on m: validation loss 1.6309 -> 0.1039 in 5.5 min.'
    """
    losses = "no validation loss" if summary["final_val_loss"] is None else \
        f"validation loss {summary['initial_val_loss']:.4f} -> {summary['final_val_loss']:.4f}"
    return f"{summary['method']} on {base_model}: {losses} in {summary['train_minutes']:.1f} min."
