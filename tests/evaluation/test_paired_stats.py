"""Paired statistics on hand-made predictions with answers computed by hand."""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from ftkit.evaluation import paired
from ftkit.metrics.bootstrap import mean_statistic, paired_bootstrap


def _vectors(both_right: int, old_only: int, new_only: int, both_wrong: int) -> tuple[list[int], list[int]]:
    """Right/wrong vectors of the baseline (old) and fine-tuned (new) model with the given 2x2 cell counts."""
    old = [1] * both_right + [1] * old_only + [0] * new_only + [0] * both_wrong
    new = [1] * both_right + [0] * old_only + [1] * new_only + [0] * both_wrong
    return old, new


def test_mcnemar_large_table_uses_chi_square_with_continuity_correction():
    # Textbook 2x2 table (n = 314): concordant 101 and 33, discordant b = 121, c = 59.
    old, new = _vectors(101, 121, 59, 33)
    r = paired.mcnemar(old, new)
    assert (r.both_right, r.old_only, r.new_only, r.both_wrong) == (101, 121, 59, 33)
    assert r.chi2 == pytest.approx((abs(121 - 59) - 1) ** 2 / (121 + 59))  # 61^2 / 180 = 20.672
    assert r.chi2 == pytest.approx(20.6722, abs=1e-4)
    # chi-square(1 df) tail = two-sided normal tail of sqrt(chi2): an independent way to the same p-value.
    assert r.p_chi2 == pytest.approx(2 * (1 - NormalDist().cdf(math.sqrt(r.chi2))), rel=1e-6)
    assert r.method == "chi2" and r.p_value == r.p_chi2 and r.p_value < 1e-5


def test_mcnemar_small_table_uses_the_exact_binomial_test():
    old, new = _vectors(10, 1, 6, 3)  # b = 1, c = 6: p = 2 * (C(7,0) + C(7,1)) / 2^7 = 16 / 128
    r = paired.mcnemar(old, new)
    assert r.method == "exact" and r.p_value == pytest.approx(0.125)
    old, new = _vectors(4, 0, 5, 1)  # b = 0, c = 5: p = 2 / 32
    assert paired.mcnemar(old, new).p_value == pytest.approx(0.0625)


def test_mcnemar_with_no_discordant_pairs_is_not_significant_and_refuses_non_binary_scores():
    old, new = _vectors(5, 0, 0, 5)
    assert paired.mcnemar(old, new).p_value == 1.0
    with pytest.raises(ValueError, match="0/1"):
        paired.mcnemar([0.5, 1], [1, 1])


def test_binomial_tail_matches_brute_force_enumeration():
    for n in (1, 5, 12, 30):
        for k in range(n + 1):
            tail = sum(math.comb(n, i) for i in range(n + 1) if math.comb(n, i) <= math.comb(n, k)) / 2 ** n
            assert paired.binom_two_sided(k, n) == pytest.approx(min(1.0, tail))


def test_win_loss_tie_and_direction():
    counts = paired.win_loss_tie([0.9, 0.2, 0.5, 0.5], [0.1, 0.4, 0.5, 0.3])
    assert (counts["wins"], counts["losses"], counts["ties"]) == (2, 1, 1)
    assert counts["win_rate"] == pytest.approx((2 + 0.5) / 4)
    lower = paired.win_loss_tie([1.0, 3.0], [2.0, 2.0], higher_is_better=False)  # e.g. latency
    assert (lower["wins"], lower["losses"]) == (1, 1)


def test_regressions_binary_and_continuous():
    ids = ["a", "b", "c", "d"]
    assert [r["id"] for r in paired.regressions(ids, [1, 1, 0, 1], [0, 1, 1, 0])] == ["a", "d"]
    # Continuous: only drops larger than the margin count, worst first.
    regs = paired.regressions(ids, [0.9, 0.8, 0.5, 0.6], [0.3, 0.75, 0.9, 0.45], margin=0.1)
    assert [(r["id"], round(r["drop"], 2)) for r in regs] == [("a", 0.6), ("d", 0.15)]


def test_paired_bootstrap_ci_covers_the_true_difference_about_95_percent_of_the_time():
    # Population: baseline right with p = 0.6; fine-tuning fixes 30 % of its errors and breaks 5 % of its
    # successes, so the true accuracy difference is 0.4 * 0.3 - 0.6 * 0.05 = 0.09.
    true_diff = 0.4 * 0.3 - 0.6 * 0.05
    rng = np.random.default_rng(123)
    covered, significant = 0, 0
    trials = 200
    for t in range(trials):
        old = rng.random(300) < 0.6
        flip = rng.random(300)
        new = np.where(old, flip >= 0.05, flip < 0.3)
        row = paired_bootstrap(mean_statistic("acc", new.astype(float)), mean_statistic("acc", old.astype(float)),
                               n_boot=400, seed=t)
        covered += row["ci_low"] <= true_diff <= row["ci_high"]
        significant += row["ci_low"] > 0
    assert 0.90 <= covered / trials <= 0.99
    assert significant / trials > 0.9  # a 9-point paired gain on 300 examples is almost always detected


def test_compare_statistics_row_is_seeded_and_flags_significance():
    old, new = _vectors(40, 2, 18, 20)  # 80 examples, +16 points, McNemar b = 2, c = 18
    a, b = mean_statistic("accuracy", new), mean_statistic("accuracy", old)
    row = paired.compare_statistics(a, b, n_boot=500, seed=7)
    assert row == paired.compare_statistics(a, b, n_boot=500, seed=7)
    assert row["diff"] == pytest.approx(16 / 80)
    assert row["diff_ci"][0] <= 0.2 <= row["diff_ci"][1] and row["significant"]
    assert row["mcnemar"]["method"] == "exact" and row["mcnemar"]["p_value"] < 0.001
    assert paired.p_value(row) == row["mcnemar"]["p_value"]
    same = paired.compare_statistics(b, b, n_boot=200, seed=7)
    assert not same["significant"] and same["diff"] == 0


def test_compare_statistics_without_mcnemar_for_continuous_scores_and_size_mismatch():
    a = mean_statistic("rouge_l", [0.5, 0.7, 0.9, 0.4])
    b = mean_statistic("rouge_l", [0.4, 0.6, 0.9, 0.5])
    row = paired.compare_statistics(a, b, n_boot=200)
    assert "mcnemar" not in row and row["win_loss_tie"]["wins"] == 2
    with pytest.raises(ValueError, match="same test split"):
        paired.compare_statistics(a, mean_statistic("rouge_l", [1.0]))
