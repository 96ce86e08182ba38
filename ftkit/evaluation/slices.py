"""Error analysis by slice: where on the test set the fine-tuned model is weak, and whether that is more than noise.

A *dimension* splits the scored test examples into slices: the source file (``origin.file``), the input length
(terciles of the baseline's prompt tokens), the record's ``source`` (client / synthetic / uat), the value of
``task.label_field`` (structured output), and every low-cardinality extra field the data audit carried
(``fields``: CSV columns, JSON keys such as channel or language), or the ones ``evaluation.slices`` names.

For each slice with at least ``MIN_SLICE_SIZE`` examples: n, the headline metric for baseline and fine-tuned with
95 % bootstrap CIs and the paired difference (``paired.compare_statistics`` on the slice), and two tests:

- **below overall**: the fine-tuned scores of the slice against the rest of the test set, one-sided (Fisher's
  exact test for right/wrong scores, Mann-Whitney U otherwise; scipy);
- **regressed**: fine-tuned against baseline on the slice's examples (McNemar for right/wrong scores, the paired
  bootstrap otherwise: ``paired.p_value``), counted only when the difference is negative.

All these p-values form one family, adjusted with **Benjamini-Hochberg** (``scipy.stats.false_discovery_control``,
false discovery rate ``FDR``): with 30 slices, a few raw p < 0.05 are expected by chance alone and must not become
findings. Smaller slices are listed as too small, never ranked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MIN_SLICE_SIZE = 20  # examples; below this a slice's 95 % CI on a 0-1 metric is wider than ~0.4: listed, not ranked
MAX_SLICE_VALUES = 12  # a field with at most this many distinct values (and fewer than half the examples) is
#                        "low cardinality": sliced by default. An id-like column (one value per row) never is.
FDR = 0.05  # Benjamini-Hochberg false discovery rate over all slice tests of one evaluation
LENGTH_BUCKETS = 3  # input-length slices: terciles of the prompt's token count
CORRECTION = "Benjamini-Hochberg, false discovery rate 5 %"
SPECIAL = ("file", "input_length", "source")  # dimension names that are not keys of ``fields``


@dataclass
class Dimension:
    name: str
    values: list  # per example (None: the example has no value for it)
    why: str  # how it was chosen


@dataclass
class SliceReport:
    rows: list[dict] = field(default_factory=list)  # every slice, ranked ones first
    dimensions: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # evaluation.slices names no record carries
    available: list[str] = field(default_factory=list)  # field keys the records carry
    n_tests: int = 0

    @property
    def ranked(self) -> list[dict]:
        return [r for r in self.rows if not r["too_small"]]

    @property
    def weak(self) -> list[dict]:
        return sorted((r for r in self.ranked if r["below_overall"]), key=lambda r: (r["fine_tuned"], r["slice"]))

    @property
    def regressed(self) -> list[dict]:
        return sorted((r for r in self.ranked if r["regressed"]), key=lambda r: (r["diff"], r["slice"]))

    @property
    def too_small(self) -> list[dict]:
        return [r for r in self.rows if r["too_small"]]

    def to_dict(self) -> dict:
        return {"correction": CORRECTION, "min_slice_size": MIN_SLICE_SIZE, "dimensions": self.dimensions,
                "unknown": self.unknown, "n_tests": self.n_tests, "rows": self.rows,
                "weakest": [r["slice"] for r in self.weak[:3]]}


def low_cardinality(values: list) -> bool:
    """At least 2 distinct values, at most MAX_SLICE_VALUES, and fewer than half the (non-empty) examples.

    >>> low_cardinality(["email", "chat", "email", "chat"]), low_cardinality(["a", "b", "c", "d"])
    (True, False)
    """
    present = [v for v in values if v is not None]
    distinct = set(present)
    return 2 <= len(distinct) <= MAX_SLICE_VALUES and len(distinct) <= len(present) / 2


def length_buckets(n_tokens: list[int], k: int = LENGTH_BUCKETS) -> list[str]:
    """Per example, its input-length tercile as a label with its token range.

    >>> length_buckets([10, 20, 30, 40, 50, 60])
    ['short (10-20 tokens)', 'short (10-20 tokens)', 'medium (30-40 tokens)', 'medium (30-40 tokens)', 'long (50-60 tokens)', 'long (50-60 tokens)']
    """
    arr = np.asarray(n_tokens, dtype=float)
    if arr.size == 0 or arr.min() == arr.max():
        return [None] * len(n_tokens)
    edges = np.unique(np.quantile(arr, [i / k for i in range(1, k)]))
    bucket = np.searchsorted(edges, arr, side="left")  # equal lengths always share a bucket
    names = ["short", "medium", "long"] if k == 3 else [f"length q{i + 1}" for i in range(k)]
    out = {b: f"{names[b]} ({int(arr[bucket == b].min())}-{int(arr[bucket == b].max())} tokens)"
           for b in set(bucket.tolist())}
    return [out[b] for b in bucket.tolist()]


def dimensions(records: list[dict], n_input_tokens: list[int], requested: list[str], label_field: str = ""
               ) -> tuple[list[Dimension], list[str], list[str]]:
    """(dimensions to slice by, requested names no record carries, field keys the records carry)."""
    files = [(r.get("origin") or {}).get("file") for r in records]
    fields = [r.get("fields") or {} for r in records]
    keys = sorted({k for f in fields for k in f})
    dims = []
    if len(set(files)) > 1:
        dims.append(Dimension("file", files, "source file"))
    lengths = length_buckets(n_input_tokens)
    if any(v is not None for v in lengths):
        dims.append(Dimension("input_length", lengths, "input length (terciles of prompt tokens)"))
    sources = [r.get("source") or "client" for r in records]
    if len(set(sources)) > 1:
        dims.append(Dimension("source", sources, "where the record came from"))
    if label_field:
        dims.append(Dimension(label_field, [None if r.get("label") in (None, "") else str(r["label"])
                                            for r in records], "task.label_field"))
    unknown = [n for n in requested if n not in keys and n not in SPECIAL]
    for key in keys:
        values = [None if f.get(key) in (None, "") else str(f[key]) for f in fields]
        if key in requested:
            dims.append(Dimension(key, values, "evaluation.slices"))
        elif not requested and low_cardinality(values):
            dims.append(Dimension(key, values, f"extra field with {len({v for v in values if v})} values"))
    return dims, unknown, keys


def _sub(stat, idx: np.ndarray):
    from ftkit.metrics.bootstrap import Statistic

    per = None if stat.per_example is None else stat.per_example[idx]
    return Statistic(stat.name, stat.stats[idx], stat.reduce, per, stat.higher_is_better, stat.description)


def below_rest_p(scores: np.ndarray, in_slice: np.ndarray) -> float:
    """One-sided p that the slice's scores are lower than the rest's: Fisher's exact test for 0/1 scores,
    Mann-Whitney U otherwise (NaN scores left out; 1.0 when either side is empty)."""
    from scipy import stats

    ok = np.isfinite(scores)
    a, b = scores[in_slice & ok], scores[~in_slice & ok]
    if a.size == 0 or b.size == 0:
        return 1.0
    if np.isin(scores[ok], (0.0, 1.0)).all():
        table = [[int(a.sum()), int(a.size - a.sum())], [int(b.sum()), int(b.size - b.sum())]]
        return float(stats.fisher_exact(table, alternative="less").pvalue)
    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0
    return float(stats.mannwhitneyu(a, b, alternative="less").pvalue)


def adjust(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (scipy), in the same order."""
    if not p_values:
        return []
    from scipy.stats import false_discovery_control

    return [float(x) for x in false_discovery_control(np.asarray(p_values, dtype=float), method="bh")]


def analyse(dims: list[Dimension], old_stat, new_stat, n_boot: int = 1000, seed: int = 0) -> SliceReport:
    """Every slice of every dimension, tested and BH-adjusted (see the module docstring)."""
    from ftkit.evaluation.paired import compare_statistics, p_value

    report = SliceReport(dimensions=[d.name for d in dims])
    scores = np.asarray(new_stat.per_example, dtype=float)
    overall = new_stat.value()
    raw = []  # (row, key) pairs whose p-values form the family
    for dim in dims:
        values = dim.values
        for value in sorted({v for v in values if v is not None}, key=str):
            mask = np.array([v == value for v in values])
            idx = np.flatnonzero(mask)
            row = {"dimension": dim.name, "value": value, "slice": f"{dim.name} = {value}", "n": int(idx.size),
                   "too_small": bool(idx.size < MIN_SLICE_SIZE), "below_overall": False, "regressed": False,
                   "overall": overall}
            cmp = compare_statistics(_sub(new_stat, idx), _sub(old_stat, idx), n_boot, seed)
            row.update({k: cmp[k] for k in ("baseline", "baseline_ci", "fine_tuned", "fine_tuned_ci", "diff",
                                            "diff_ci")})
            if not row["too_small"]:
                row["p_below_raw"] = below_rest_p(scores, mask)
                row["p_regressed_raw"] = p_value(cmp) if cmp["diff"] < 0 else 1.0
                raw += [(row, "below"), (row, "regressed")]
            report.rows.append(row)
    adjusted = adjust([r[f"p_{k}_raw"] for r, k in raw])
    for (row, key), p in zip(raw, adjusted):
        row[f"p_{key}"] = p
        flag = "below_overall" if key == "below" else "regressed"
        row[flag] = bool(p < FDR and (key == "below" or row["diff"] < 0))
    report.n_tests = len(raw)
    report.rows.sort(key=lambda r: (r["too_small"], _nan_last(r["fine_tuned"]), r["slice"]))
    return report


def _nan_last(x: float) -> float:
    return math.inf if x is None or math.isnan(x) else x


# -- what to do about a weak slice ---------------------------------------------------------------------------------

def what_to_collect(row: dict) -> str:
    """The next step for a weak slice, by dimension."""
    dim, value = row["dimension"], row["value"]
    if dim == "file":
        return f"check the examples of {value} (labels, format, whether they belong to the task) and add more like them"
    if dim == "input_length":
        return (f"add training examples with {value.split(' (')[0]} inputs; check they are not truncated "
                f"(training.max_seq_length)")
    if dim == "source":
        return f"review the {value} examples (their labels and whether they match real traffic)"
    return f"collect more examples with {dim} = {value} and check their labels"


def table_rows(report: SliceReport) -> list[dict]:
    """The slice table as the notebook shows it."""
    def ci(lo_hi, fmt="{:.3f}"):
        return "" if not lo_hi or any(x is None or math.isnan(x) for x in lo_hi) else \
            f"[{fmt.format(lo_hi[0])}, {fmt.format(lo_hi[1])}]"

    out = []
    for r in report.rows:
        status = "too small to rank" if r["too_small"] else ", ".join(
            [s for s, on in (("below overall", r["below_overall"]), ("regressed", r["regressed"])) if on]) or "-"
        out.append({"slice": r["slice"], "n": r["n"], "baseline": f"{r['baseline']:.3f} {ci(r['baseline_ci'])}",
                    "fine-tuned": f"{r['fine_tuned']:.3f} {ci(r['fine_tuned_ci'])}",
                    "difference": f"{r['diff']:+.3f} {ci(r['diff_ci'], '{:+.3f}')}",
                    "p below overall (BH)": "" if r["too_small"] else f"{r['p_below']:.2g}",
                    "p regressed (BH)": "" if r["too_small"] else f"{r['p_regressed']:.2g}", "finding": status})
    return out


# -- structured output: accuracy per JSON field --------------------------------------------------------------------

def field_accuracy_rows(old_preds: list, new_preds: list, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Per key of the reference JSON objects: share of examples whose answer reproduces that field (numbers as
    numbers, ``structured.values_equal``), both models with CIs and the paired difference."""
    from ftkit.evaluation.paired import compare_statistics
    from ftkit.metrics.bootstrap import mean_statistic
    from ftkit.metrics.structured import parse_json_object, values_equal

    refs = [parse_json_object(p.reference) for p in new_preds]
    keys = sorted({k for r in refs if r for k in r})

    def scores(preds, key):
        out = []
        for p, ref in zip(preds, refs):
            if not ref or key not in ref:
                out.append(float("nan"))
                continue
            obj = parse_json_object(p.output)
            out.append(float(obj is not None and key in obj and values_equal(obj[key], ref[key])))
        return out

    rows = []
    for key in keys:
        new, old = mean_statistic(key, scores(new_preds, key)), mean_statistic(key, scores(old_preds, key))
        cmp = compare_statistics(new, old, n_boot, seed)
        rows.append({"field": key, "n": int(np.isfinite(new.per_example).sum()),
                     "baseline": round(cmp["baseline"], 3), "fine-tuned": round(cmp["fine_tuned"], 3),
                     "fine-tuned 95% CI": f"[{cmp['fine_tuned_ci'][0]:.3f}, {cmp['fine_tuned_ci'][1]:.3f}]",
                     "difference": f"{cmp['diff']:+.3f} [{cmp['diff_ci'][0]:+.3f}, {cmp['diff_ci'][1]:+.3f}]"})
    return rows


# -- the rules (pure: numbers in, a finding out) ----------------------------------------------------------------------

def weak_slices_finding(report: SliceReport, metric: str):
    """A warning naming the weakest slices that are significantly below the overall figure (BH-adjusted), with
    what to collect or fix for each; else an info saying none is, and how many were too small to rank."""
    from ftkit.section import finding

    weak = report.weak
    small = f"; {len(report.too_small)} slice(s) had fewer than {MIN_SLICE_SIZE} examples and are not ranked" \
        if report.too_small else ""
    if not weak:
        return finding("info", "evaluation.slices",
                       f"No slice is significantly below the overall {metric} among {len(report.ranked)} ranked "
                       f"slice(s) of {len(report.dimensions)} dimension(s) ({CORRECTION}){small}.")
    named = "; ".join(f"{r['slice']}: {r['fine_tuned']:.3f} on {r['n']} examples (overall {r['overall']:.3f}, "
                      f"adjusted p = {r['p_below']:.2g})" for r in weak[:3])
    return finding("warning", "evaluation.weak_slices",
                   f"{len(weak)} slice(s) significantly below the overall {metric} ({CORRECTION}): {named}{small}.",
                   "; ".join(f"{r['slice']}: {what_to_collect(r)}" for r in weak[:3]) + ".")


def slice_regressions_finding(report: SliceReport, metric: str):
    """A warning for slices where the fine-tuned model is significantly worse than the baseline (BH-adjusted)."""
    from ftkit.section import finding

    regressed = report.regressed
    if not regressed:
        return None
    named = "; ".join(f"{r['slice']}: {r['baseline']:.3f} -> {r['fine_tuned']:.3f} on {r['n']} examples "
                      f"(adjusted p = {r['p_regressed']:.2g})" for r in regressed[:3])
    return finding("warning", "evaluation.slice_regressions",
                   f"The fine-tuned model is significantly worse than the baseline on {len(regressed)} slice(s) "
                   f"({CORRECTION}): {named}.",
                   "Add training examples of these slices (the training data under-represents them) and re-train; "
                   "show them to the client before go-live.")


def unknown_slices_finding(unknown: list[str], available: list[str]):
    """A warning when evaluation.slices names fields no scored record carries."""
    from ftkit.section import finding

    if not unknown:
        return None
    return finding("warning", "evaluation.slice_unknown",
                   f"evaluation.slices names {', '.join(unknown)}, which no scored test record carries; the records "
                   f"carry: {', '.join(available) or 'no extra fields'} (plus {', '.join(SPECIAL)}).",
                   "Fix evaluation.slices in engagement.yaml, or deliver the column with the data and re-run the data "
                   "audit.")


def confusions_finding(top: list[dict], n: int):
    """The most frequent confusions in plain words (info); None when the model confused nothing."""
    from ftkit.metrics.per_label import confusion_sentence
    from ftkit.section import finding

    if not top:
        return None
    return finding("info", "evaluation.confusions",
                   f"Most frequent confusions of the fine-tuned model on {n} test examples: "
                   + "; ".join(confusion_sentence(r) for r in top[:5]) + ".",
                   "Check that these labels can be told apart from the text (contrasting training examples, clearer "
                   "label definitions, or merge them with the client's agreement).")


def decision_checks(acceptance: list, rows: dict, headline: str) -> list[dict]:
    """What the go/no-go decides on, each with its CI: every acceptance criterion on a metric of the paired
    table (fine-tuned value vs its bar), else (no criteria) the headline metric's difference vs 0."""
    checks = []
    for crit in acceptance:
        row = rows.get(getattr(crit, "metric", ""))
        if not row:
            continue
        for bound, bar in (("min", getattr(crit, "min", None)), ("max", getattr(crit, "max", None))):
            if bar is not None:
                checks.append({"what": f"{crit.metric} {'>=' if bound == 'min' else '<='} {bar:g}",
                               "value": row["fine_tuned"], "bar": float(bar), "ci": list(row["fine_tuned_ci"])})
    if not checks and headline in rows:
        row = rows[headline]
        checks.append({"what": f"{headline}: fine-tuned minus baseline > 0", "value": row["diff"], "bar": 0.0,
                       "ci": list(row["diff_ci"])})
    return checks


def decision_size_finding(checks: list[dict], n: int, n_test: int, how: str = ""):
    """A warning when a decision's 95 % CI is wider than its margin (|value - bar| < CI half-width): the test set
    is too small to decide; with the examples needed (half-widths shrink with 1/sqrt(n)) and what scoring the
    whole test split would give when only a subset was scored. Else an info stating the CI and the subset."""
    from ftkit.section import finding

    usable = [c for c in checks if c["ci"] and all(x is not None and math.isfinite(x) for x in c["ci"])]
    if not usable:
        return None
    subset = f"{how or f'{n} of {n_test} test examples'}; " if n < n_test else f"all {n} test examples; "
    parts, short = [], []
    for c in usable:
        half = (c["ci"][1] - c["ci"][0]) / 2
        gap = abs(c["value"] - c["bar"])
        full = f", about ±{half * math.sqrt(n / n_test):.3f} on all {n_test}" if n < n_test else ""
        parts.append(f"{c['what']}: {c['value']:.3f}, 95 % CI ±{half:.3f}{full}")
        if half > gap:
            need = f"about {math.ceil(round(n * (half / gap) ** 2, 6)):,} examples" if gap > 0 else "more examples than any test set"
            short.append(f"{c['what']} is {gap:.3f} from its bar, inside the ±{half:.3f} CI ({need} would decide it)")
    if short:
        return finding("warning", "evaluation.test_set_too_small",
                       f"The test set is too small for the decision ({subset}" + "; ".join(short) + ").",
                       ("Score the whole test split (baseline.max_examples: 0), then re-run the baseline and the "
                        "evaluation" if n < n_test else "Add held-out test examples (data.test_files) and re-run") + ".")
    return finding("info", "evaluation.test_set_size", f"Decided on {subset}" + "; ".join(parts) + ".")


def weakest_sentence(report: dict | None) -> str:
    """One sentence on the weakest significant slice of a ``SliceReport.to_dict()`` ("" when there is none), for
    the evaluation's summary line in the consolidated report.

    >>> weakest_sentence({"weakest": ["channel = phone"], "rows": [{"slice": "channel = phone", "n": 40,
    ...     "fine_tuned": 0.5, "overall": 0.8}]})
    'Weakest slice: channel = phone (0.500 on 40 examples vs 0.800 overall).'
    """
    if not report or not report.get("weakest"):
        return ""
    name = report["weakest"][0]
    row = next((r for r in report.get("rows", []) if r.get("slice") == name), None)
    if not row or row.get("fine_tuned") is None:
        return f"Weakest slice: {name}."
    return f"Weakest slice: {name} ({row['fine_tuned']:.3f} on {row['n']} examples vs {row['overall']:.3f} overall)."
