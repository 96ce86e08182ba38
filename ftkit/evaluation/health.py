"""Training health as the verdict sees it: the validation-loss trend and the training phase's overfitting flag.

The training phase owns the loss curve and the flag; this module only reads them back (from
``loss_history.json`` and the typed ``TrainingResults`` of the evaluated training run) and names the trend, so the
verdict can tell "train differently" (overfitting, no learning) from "get better data".
"""
from __future__ import annotations

import math


def val_losses(history) -> list[tuple[float, float]]:
    """(step, validation loss) pairs from a loss history, oldest first.

    Accepts a list of entries, or a dict with a list under ``history``/``entries``/``log``, whose validation
    loss is ``eval_loss``, ``val_loss`` or ``validation_loss`` (Trainer's log_history uses ``eval_loss``).

    >>> val_losses([{"step": 1, "loss": 3.0}, {"step": 2, "eval_loss": 2.5}, {"step": 4, "val_loss": 2.0}])
    [(2.0, 2.5), (4.0, 2.0)]
    """
    if isinstance(history, dict):
        entries = next((history[k] for k in ("validation", "history", "entries", "log", "log_history")
                        if isinstance(history.get(k), list)), [])
    else:
        entries = history or []
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        value = next((entry[k] for k in ("eval_loss", "val_loss", "validation_loss") if k in entry), None)
        if isinstance(value, (int, float)) and math.isfinite(value):
            out.append((float(entry.get("step", i)), float(value)))
    return out


def trend(losses: list[float]) -> str:
    """'falling', 'rising' (went up again after its best), 'flat' or 'unknown' (fewer than 2 points).

    >>> trend([2.0, 1.5, 1.2]), trend([2.0, 1.2, 1.6]), trend([2.0, 1.99]), trend([1.0])
    ('falling', 'rising', 'flat', 'unknown')
    """
    # The training phase's own thresholds (relative change), so both phases call the same curve the same thing.
    from ftkit.training.summary import FALL, RISE

    if len(losses) < 2:
        return "unknown"
    first, best, last = losses[0], min(losses), losses[-1]
    if last > best * (1 + RISE) and losses.index(best) < len(losses) - 1:
        return "rising"
    if last < first * (1 - FALL):
        return "falling"
    return "flat"


def overfitting_flag(training) -> bool:
    """The training phase's overfitting flag, read from its typed results (``TrainingResults.overfitting``)."""
    return bool(training.overfitting["flag"])


def summarise(training, history) -> dict:
    """What the evaluation shows and the verdict uses about training.

    ``training``: the evaluated run's typed results (``ftkit.training.phase.TrainingResults``).
    """
    points = val_losses(history)
    losses = [v for _, v in points]
    flag = overfitting_flag(training)
    return {"n_validations": len(points), "first_val_loss": losses[0] if losses else None,
            "best_val_loss": min(losses) if losses else None, "final_val_loss": losses[-1] if losses else None,
            "val_loss_trend": trend(losses), "overfitting": flag, "overfitting_reported": True,
            "steps": [s for s, _ in points], "val_losses": losses}
