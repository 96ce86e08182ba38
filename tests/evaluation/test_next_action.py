"""The next action follows the evidence: under-trained -> train longer (priced), converged with concentrated errors ->
fix those data, converged and uniformly weak -> a larger model, stalled iterations -> stop. Each rule on both sides
of its threshold, on hand-made evidence."""
from __future__ import annotations

import pytest

from ftkit.evaluation import paired, verdict
from ftkit.metrics.bootstrap import mean_statistic

OLD = [1] * 37 + [1] * 3 + [0] * 38 + [0] * 22
NEW = [1] * 37 + [0] * 3 + [1] * 38 + [0] * 22  # significantly better than OLD
FAIL = [{"metric": "accuracy", "min": 0.9}]
FALLING = {"overfitting": False, "val_loss_trend": "falling"}


def _ev(new=OLD, **extra) -> dict:
    row = paired.compare_statistics(mean_statistic("accuracy", new), mean_statistic("accuracy", OLD), n_boot=400)
    return {"headline_metric": "accuracy", "metrics": {"accuracy": row}, "regressions": [], "n_examples": len(OLD),
            "training": FALLING, **extra}


def _progress(epochs: float, losses: list[float], steps: int = 40, seconds: float = 240.0) -> dict:
    return {"epochs_seen": epochs, "steps": steps, "steps_per_epoch": 0, "seconds_per_step": seconds / steps,
            "val_losses": losses}


def test_under_trained_means_train_longer_with_the_cost():
    # banking77 as a consultant ran it: 7 % of an epoch, validation loss 6.69 -> 1.52 and still falling
    v = verdict.decide(FAIL, _ev(training_progress=_progress(0.07, [6.69, 2.5, 1.52], steps=40, seconds=240)))
    assert v.action == "train_longer"
    assert "0.07 epoch(s) in 40 steps" in v.why and "2.50 -> 1.52" in v.why
    more, minutes = verdict.longer_training_cost(verdict.loop_facts(
        {"training_progress": _progress(0.07, [6.69, 2.5, 1.52])}, 3))
    assert more == 531 and minutes == pytest.approx(53.1)  # 40 / 0.07 = 571 steps per epoch, 6 s each
    assert f"{more} more steps" in v.next_steps[0] and "53.1 min" in v.next_steps[0]


def test_under_trained_thresholds_both_sides():
    fall = verdict.LATE_FALL
    at = [1.0, 1.0 * (1 - fall)]  # exactly LATE_FALL in the last interval: still falling
    below = [1.0, 1.0 * (1 - fall) + 1e-6]
    assert verdict.under_trained(verdict.loop_facts({"training_progress": _progress(0.5, at)}, 3))
    assert not verdict.under_trained(verdict.loop_facts({"training_progress": _progress(0.5, below)}, 3))
    assert not verdict.under_trained(verdict.loop_facts({"training_progress": _progress(verdict.UNDER_TRAINED_EPOCHS, at)}, 3))
    assert verdict.under_trained(verdict.loop_facts({"training_progress": _progress(verdict.UNDER_TRAINED_EPOCHS - 0.01, at)}, 3))
    assert not verdict.under_trained(verdict.loop_facts({}, 3))  # no evidence, no claim


def test_converged_with_weak_slices_or_suspects_means_fix_those_data():
    converged = _progress(3.0, [2.0, 1.2, 1.19])
    v = verdict.decide(FAIL, _ev(training_progress=converged, weak_slices=["channel=email"]))
    assert v.action == "fix_data" and "channel=email" in v.why
    share = verdict.SUSPECT_SHARE
    v = verdict.decide(FAIL, _ev(training_progress=converged, weak_slices=[], suspects={"n": int(share * 1000), "n_scored": 1000}))
    assert v.action == "fix_data" and "20 of 1000 examples (2.0 %) look mislabelled" in v.why
    assert "suspect_labels.csv" in v.next_steps[0] and "data.corrections" in v.next_steps[0]
    v = verdict.decide(FAIL, _ev(training_progress=converged, weak_slices=[], suspects={"n": int(share * 1000) - 1, "n_scored": 1000}))
    assert v.action == "larger_model"  # below the share, no weak slice: the errors are spread evenly


def test_converged_and_uniformly_weak_means_a_larger_model_unless_fine_tuning_already_works():
    converged = _progress(3.0, [2.0, 1.2, 1.19])
    v = verdict.decide(FAIL, _ev(training_progress=converged, weak_slices=[], suspects={"n": 0, "n_scored": 500}))
    assert v.action == "larger_model" and "no slice is significantly weaker" in v.why and "3.00 epochs" in v.why
    v = verdict.decide(FAIL, _ev(NEW, training_progress=converged, weak_slices=[], suspects={"n": 0, "n_scored": 500}))
    assert v.action == "iterate_on_data"  # significantly better already: more data, not another model
    # Without slice or suspect evidence nothing claims the errors are spread evenly
    v = verdict.decide(FAIL, _ev(training_progress=converged))
    assert v.action == "iterate_on_data"


def _ledger(*gains) -> list[dict]:
    """Iteration 1 vs the baseline, then each later one vs the one before: (diff, significant)."""
    rows = []
    for i, (diff, sig) in enumerate(gains, start=1):
        row = {"iteration": i, "metric": "accuracy", "value": 0.5 + i / 100, "higher_is_better": True,
               "vs_baseline": diff, "vs_baseline_p": 0.01 if sig else 0.4, "vs_baseline_significant": sig}
        if i > 1:
            row.update(vs_previous=diff, vs_previous_p=0.01 if sig else 0.4, vs_previous_significant=sig)
        rows.append(row)
    return rows


def test_stop_after_max_iterations_without_a_significant_gain():
    stalled = _ledger((0.2, True), (0.01, False), (0.0, False), (-0.01, False))
    assert verdict.decide(FAIL, _ev(ledger=stalled), max_iterations=3).action == "stop"
    v = verdict.decide(FAIL, _ev(ledger=stalled), max_iterations=3)
    assert "3 iteration(s) in a row without a significant gain" in v.why and "iteration 4: accuracy 0.540" in v.why
    assert verdict.decide(FAIL, _ev(ledger=stalled), max_iterations=4).action != "stop"
    # a significant gain resets the count: 2 stalled after it
    assert verdict.decide(FAIL, _ev(ledger=_ledger((0.0, False), (0.1, True), (0.0, False), (0.0, False))),
                          max_iterations=3).action != "stop"
    # a significant gain in the wrong direction is no gain
    worse = _ledger((-0.2, True), (-0.1, True), (-0.1, True))
    assert verdict.decide(FAIL, _ev(ledger=worse), max_iterations=3).action == "stop"


def test_a_significantly_worse_iteration_says_so_whatever_the_action():
    from ftkit.evaluation.verdict import DEFAULT_CRITERIA

    worse = _ledger((0.7, True), (-0.154, True))
    worse[0]["training_run"] = "t1"
    v = verdict.decide([{"metric": "accuracy", "min": 0.3}], _ev(NEW, ledger=worse))
    assert v.action == "ship" and "Iteration 2 is significantly worse than iteration 1" in v.why
    assert v.next_steps[0].startswith("Prefer iteration 1's model (training run t1)")
    better = _ledger((0.7, True), (0.154, True))
    v = verdict.decide([{"metric": "accuracy", "min": 0.3}], _ev(NEW, ledger=better))
    assert "worse" not in v.why and not v.next_steps[0].startswith("Prefer")
    noise = _ledger((0.7, True), (-0.05, False))  # not significant: no claim
    assert "worse" not in verdict.decide(list(DEFAULT_CRITERIA), _ev(NEW, ledger=noise)).why


def test_overfitting_retrains_with_the_curve_that_shows_it():
    ev = _ev(training={"overfitting": True, "val_loss_trend": "rising"},
             training_progress=_progress(4.0, [2.0, 1.1, 1.3, 1.6], steps=400))
    v = verdict.decide(FAIL, ev)
    assert v.action == "iterate_on_training" and "1.10 -> 1.30 -> 1.60" in v.why and "4.00 epoch(s) in 400 steps" in v.why
    assert "fewer epochs" in v.next_steps[0]
