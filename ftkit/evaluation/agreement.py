"""Inter-rater agreement: Cohen's kappa for two raters, mean pairwise kappa for more.

Kappa corrects raw agreement for the agreement two raters would reach by chance given how often each uses
each category: kappa = (p_o - p_e) / (1 - p_e). Rough reading (Landis & Koch 1977): < 0.2 slight,
0.2-0.4 fair, 0.4-0.6 moderate, 0.6-0.8 substantial, > 0.8 almost perfect.
"""
from __future__ import annotations

from collections import Counter
from itertools import combinations

# (upper bound, word) in increasing order: Landis & Koch's bands.
BANDS = ((0.0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial"),
         (1.01, "almost perfect"))


def cohen_kappa(a: list, b: list) -> float:
    """Cohen's kappa of two raters' labels for the same items (same order).

    Textbook example (50 items: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no): p_o = 0.7, p_e = 0.5, kappa = 0.4.

    >>> round(cohen_kappa(["y"] * 25 + ["n"] * 25, ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15), 6)
    0.4
    >>> cohen_kappa(["x", "x"], ["x", "x"])  # both raters always say the same one thing: perfect, not 0/0
    1.0
    """
    if len(a) != len(b):
        raise ValueError(f"kappa needs the same items for both raters: {len(a)} vs {len(b)} labels")
    n = len(a)
    if n == 0:
        return float("nan")
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / n ** 2
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else float("nan")
    return (observed - expected) / (1 - expected)


def band(kappa: float) -> str:
    """Landis & Koch's word for a kappa value.

    >>> band(0.4), band(0.85), band(-0.1)
    ('moderate', 'almost perfect', 'poor')
    """
    if kappa != kappa:  # NaN
        return "undefined"
    return next(word for bound, word in BANDS if kappa < bound)


def agreement(ratings: dict[str, dict[str, str]]) -> dict:
    """Agreement between raters on the items they both rated.

    ``ratings``: rater -> {item id -> category}. Returns raw agreement and kappa for each pair of raters,
    and their mean (the kappa itself when there are exactly two raters).

    >>> agreement({"ann": {"1": "a", "2": "b"}, "bob": {"1": "a", "2": "b"}})["kappa"]
    1.0
    """
    pairs = []
    for r1, r2 in combinations(sorted(ratings), 2):
        common = sorted(set(ratings[r1]) & set(ratings[r2]))
        x = [ratings[r1][i] for i in common]
        y = [ratings[r2][i] for i in common]
        kappa = cohen_kappa(x, y)
        raw = sum(p == q for p, q in zip(x, y)) / len(common) if common else float("nan")
        pairs.append({"raters": [r1, r2], "n_items": len(common), "raw_agreement": raw, "kappa": kappa,
                      "band": band(kappa)})
    finite = [p["kappa"] for p in pairs if p["kappa"] == p["kappa"]]
    mean = sum(finite) / len(finite) if finite else float("nan")
    return {"n_raters": len(ratings), "pairs": pairs, "kappa": mean, "band": band(mean),
            "method": "cohen" if len(pairs) == 1 else "mean pairwise cohen" if pairs else "none"}
