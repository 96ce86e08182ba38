"""Free-text metrics: ROUGE-L (rouge-score), BLEU and chrF (sacrebleu), exact match.

BLEU and chrF are corpus-level: their bootstrap resamples sum sacrebleu's per-segment n-gram statistics
and let sacrebleu compute the score from the sums (what ``sacrebleu --paired-bs`` does), so the CI
matches the reported corpus score exactly. All three are on a 0-100 scale for BLEU/chrF as sacrebleu
reports them, 0-1 for ROUGE-L and exact match.
"""
from __future__ import annotations

import numpy as np

from ftkit.metrics.bootstrap import Statistic, mean_statistic


def _squash(text: str) -> str:
    return " ".join(str(text).split())


def rouge_l(outputs: list[str], references: list[str]) -> Statistic:
    """Mean ROUGE-L F-measure (longest common subsequence of words; rouge-score's default tokenizer)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    scores = [scorer.score(ref, out)["rougeL"].fmeasure for out, ref in zip(outputs, references)]
    return mean_statistic("rouge_l", scores, description="ROUGE-L F1 (longest common word subsequence), 0-1")


def _sacrebleu_statistic(name: str, metric, sentence_metric, outputs: list[str], references: list[str],
                         description: str) -> Statistic:
    # _extract_corpus_statistics / _compute_score_from_stats are what sacrebleu's own paired bootstrap
    # (sacrebleu.significance) uses: (n, k) integer n-gram statistics per segment, additive over segments.
    stats = np.asarray(metric._extract_corpus_statistics(outputs, [references]), dtype=float).reshape(len(outputs), -1)

    def reduce(resampled: np.ndarray) -> np.ndarray:  # (b, n, k) -> (b,)
        return np.array([metric._compute_score_from_stats(list(row)).score for row in resampled.sum(axis=1)])

    per_example = np.array([sentence_metric.sentence_score(o, [r]).score for o, r in zip(outputs, references)])
    return Statistic(name, stats, reduce, per_example, True, description)


def bleu(outputs: list[str], references: list[str]) -> Statistic:
    from sacrebleu.metrics import BLEU

    # Corpus BLEU as sacrebleu.corpus_bleu reports it; per-sentence scores need effective order (short answers).
    return _sacrebleu_statistic("bleu", BLEU(), BLEU(effective_order=True), outputs, references,
                                "corpus BLEU (sacrebleu, 13a tokenizer), 0-100")


def chrf(outputs: list[str], references: list[str]) -> Statistic:
    from sacrebleu.metrics import CHRF

    return _sacrebleu_statistic("chrf", CHRF(), CHRF(), outputs, references,
                                "corpus chrF (sacrebleu, character n-grams), 0-100")


def statistics(outputs: list[str], references: list[str], task) -> tuple[list[Statistic], dict]:
    from ftkit.metrics.numbers import same_number

    # a numeric reference matches the same number written another way ("42.0", "1,000"), never a near miss
    exact = [float(_squash(o) == _squash(r) or same_number(o, r)) for o, r in zip(outputs, references)]
    stats = [rouge_l(outputs, references), bleu(outputs, references), chrf(outputs, references),
             mean_statistic("exact_match", exact, description="identical to the reference up to whitespace "
                                                           "(numbers as numbers)"),
             mean_statistic("format_compliance", [float(bool(o.strip())) for o in outputs],
                            description="a non-empty answer")]
    return stats, {}
