"""Error analysis by slice (ftkit/evaluation/slices.py): dimensions, the Benjamini-Hochberg correction on hand-made
counts and against scipy, the size and cardinality thresholds on both sides, and every finding's rule."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from ftkit.config import AcceptanceCriterion
from ftkit.evaluation import slices
from ftkit.metrics.bootstrap import mean_statistic


def _records(n, **fields):
    return [{"id": str(i), "origin": {"file": "a.csv" if i % 2 else "b.csv", "line": i + 2},
             "fields": {k: v(i) for k, v in fields.items()}} for i in range(n)]


def _report(old, new, values, name="channel", n_boot=200):
    dims = [slices.Dimension(name, list(values), "test")]
    return slices.analyse(dims, mean_statistic("accuracy", old), mean_statistic("accuracy", new), n_boot, 0)


def test_bh_on_hand_made_p_values():
    # sorted p: 0.01, 0.02, 0.03, 0.2 (m = 4): p * m / rank = 0.04, 0.04, 0.04, 0.2 (then the running minimum
    # from the top): what Benjamini and Hochberg's step-up procedure gives by hand
    assert slices.adjust([0.03, 0.2, 0.01, 0.02]) == pytest.approx([0.04, 0.2, 0.04, 0.04])
    assert slices.adjust([0.001, 0.04, 0.045, 0.5]) == pytest.approx([0.004, 0.06, 0.06, 0.5])
    rng = np.random.default_rng(3)
    p = rng.random(40) ** 3
    assert slices.adjust(list(p)) == pytest.approx(list(false_discovery_control(p, method="bh")))
    assert slices.adjust([]) == []


def test_many_slices_of_pure_noise_manufacture_no_finding():
    rng = np.random.default_rng(0)
    n = 1200
    old, new = (rng.random(n) < 0.7).astype(float), (rng.random(n) < 0.7).astype(float)
    values = [f"v{i % 30}" for i in range(n)]  # 30 slices of 40, all from one distribution
    rep = _report(old, new, values, n_boot=100)
    raw = [r["p_below_raw"] for r in rep.ranked]
    assert rep.n_tests == 60 and len(rep.ranked) == 30
    assert not rep.weak and not rep.regressed
    assert slices.weak_slices_finding(rep, "accuracy").code == "evaluation.slices"
    assert min(raw) < 0.2  # some raw p-values look interesting by chance; the correction keeps them quiet


def test_a_truly_weak_slice_is_found_and_named_with_what_to_collect():
    n = 300
    values = ["phone" if i % 3 == 0 else ("email" if i % 3 == 1 else "chat") for i in range(n)]
    new = np.array([0.0 if (v == "phone" and i % 5) else 1.0 for i, v in enumerate(values)])
    old = np.array([1.0 if v == "phone" else 0.0 for v in values])
    rep = _report(old, new, values)
    assert [r["slice"] for r in rep.weak] == ["channel = phone"] and rep.weak[0]["n"] == 100
    assert [r["slice"] for r in rep.regressed] == ["channel = phone"]
    weak = slices.weak_slices_finding(rep, "accuracy")
    assert weak.severity == "warning" and weak.code == "evaluation.weak_slices"
    assert "channel = phone: 0.200 on 100 examples" in weak.message and "Benjamini-Hochberg" in weak.message
    assert "collect more examples with channel = phone" in weak.next_step
    reg = slices.slice_regressions_finding(rep, "accuracy")
    assert reg.code == "evaluation.slice_regressions" and "1.000 -> 0.200" in reg.message
    assert rep.to_dict()["weakest"] == ["channel = phone"]


def test_minimum_slice_size_both_sides():
    k = slices.MIN_SLICE_SIZE
    values = ["big"] * 100 + ["edge"] * k + ["tiny"] * (k - 1)
    new = np.array([1.0] * 100 + [0.0] * k + [0.0] * (k - 1))
    rep = _report(new, new, values)
    by = {r["value"]: r for r in rep.rows}
    assert by["edge"]["too_small"] is False and by["edge"]["below_overall"] is True
    assert by["tiny"]["too_small"] is True and by["tiny"]["below_overall"] is False and "p_below" not in by["tiny"]
    assert rep.rows[-1]["value"] == "tiny"  # too small: listed last, not ranked
    assert "1 slice(s) had fewer than" in slices.weak_slices_finding(rep, "accuracy").message
    assert slices.table_rows(rep)[-1]["finding"] == "too small to rank"


def test_low_cardinality_both_sides():
    m = slices.MAX_SLICE_VALUES
    assert slices.low_cardinality([f"v{i % m}" for i in range(100)])
    assert not slices.low_cardinality([f"v{i % (m + 1)}" for i in range(100)])
    assert not slices.low_cardinality(["x"] * 100)  # one value: nothing to compare
    assert not slices.low_cardinality([str(i) for i in range(20)])  # id-like


def test_dimensions_default_and_requested():
    recs = _records(60, channel=lambda i: ["email", "chat"][i % 2], ticket=lambda i: f"T{i}")
    recs[0]["source"] = "synthetic"
    dims, unknown, keys = slices.dimensions(recs, list(range(60)), [])
    assert [d.name for d in dims] == ["file", "input_length", "source", "channel"] and keys == ["channel", "ticket"]
    assert {v for v in dims[2].values} == {"client", "synthetic"}
    named, unknown, _ = slices.dimensions(recs, [5] * 60, ["ticket", "language"], label_field="priority")
    assert [d.name for d in named] == ["file", "source", "priority", "ticket"] and unknown == ["language"]
    f = slices.unknown_slices_finding(unknown, keys)
    assert f.code == "evaluation.slice_unknown" and "language" in f.message and "channel, ticket" in f.message
    assert slices.unknown_slices_finding([], keys) is None


def test_length_buckets_keep_equal_lengths_together():
    buckets = slices.length_buckets([10, 10, 10, 10, 50, 90, 90])
    assert len(set(buckets[:4])) == 1 and buckets[0].startswith("short (10-10")
    assert slices.length_buckets([7, 7, 7]) == [None, None, None]


def test_decision_size_both_sides_of_the_margin():
    rows = {"accuracy": {"fine_tuned": 0.82, "fine_tuned_ci": [0.76, 0.88], "diff": 0.1, "diff_ci": [0.02, 0.18]}}
    tight = slices.decision_checks([AcceptanceCriterion(metric="accuracy", min=0.7)], rows, "accuracy")
    assert tight == [{"what": "accuracy >= 0.7", "value": 0.82, "bar": 0.7, "ci": [0.76, 0.88]}]
    ok = slices.decision_size_finding(tight, 200, 3080, "200 of 3080 test examples, stratified by label")
    assert ok.code == "evaluation.test_set_size" and "±0.060" in ok.message and "about ±0.015 on all 3080" in ok.message
    close = slices.decision_checks([AcceptanceCriterion(metric="accuracy", min=0.8)], rows, "accuracy")
    bad = slices.decision_size_finding(close, 200, 3080)
    assert bad.severity == "warning" and bad.code == "evaluation.test_set_too_small"
    assert "0.020 from its bar" in bad.message and "about 1,800 examples" in bad.message  # 200 * (0.06/0.02)^2
    assert "baseline.max_examples: 0" in bad.next_step
    assert "data.test_files" in slices.decision_size_finding(close, 3080, 3080).next_step
    default = slices.decision_checks([], rows, "accuracy")  # no criteria: the paired difference vs 0
    assert default[0]["bar"] == 0.0 and slices.decision_size_finding(default, 200, 200).code == "evaluation.test_set_size"
    rows["accuracy"]["diff_ci"] = [-0.02, 0.22]
    assert slices.decision_size_finding(slices.decision_checks([], rows, "accuracy"), 200, 200).code == \
        "evaluation.test_set_too_small"


def test_confusions_finding_only_when_there_are_confusions():
    top = [{"reference": "card_arrival", "answered": "card_delivery_estimate", "count": 14}]
    f = slices.confusions_finding(top, 200)
    assert f.code == "evaluation.confusions" and "14 card_arrival messages were answered card_delivery_estimate" in f.message
    assert slices.confusions_finding([], 200) is None


def test_field_accuracy_rows_per_json_field():
    from ftkit.generation import Prediction

    def pred(out, ref):
        return Prediction("x", "h", out, ref, 1, 1, 0.1, False)

    refs = ['{"priority": 1, "team": "billing"}'] * 4
    old = [pred('{"priority": true, "team": "billing"}', r) for r in refs]
    new = [pred('{"priority": 1.0, "team": "sales"}', r) for r in refs]
    rows = {r["field"]: r for r in slices.field_accuracy_rows(old, new, n_boot=50)}
    assert (rows["priority"]["baseline"], rows["priority"]["fine-tuned"]) == (0.0, 1.0)
    assert (rows["team"]["baseline"], rows["team"]["fine-tuned"]) == (1.0, 0.0) and rows["team"]["n"] == 4


def _classification_case(n=240, seed=0):
    from ftkit import metrics
    from ftkit.config import parse_config
    from ftkit.evaluation import phase, presentation
    from ftkit.generation import Prediction

    rng = np.random.default_rng(seed)
    labels = ["card_arrival", "card_delivery_estimate", "pin_blocked", "top_up_failed"]
    records = [{"id": f"t:{i}", "label": labels[i % 4], "origin": {"file": "test.csv", "line": i + 2},
                "fields": {"channel": ["app", "web", "phone"][i % 3]},
                "messages": [{"role": "user", "content": "x" * (10 + i % 50)}, {"role": "assistant", "content": "y"}]}
               for i in range(n)]

    def answer(r, who):
        if who == "new" and r["label"] == "card_arrival" and r["fields"]["channel"] == "phone":
            return "card_delivery_estimate"  # the fine-tuned model's systematic confusion, on one channel
        return r["label"] if rng.random() < (0.9 if who == "new" else 0.6) else labels[rng.integers(0, 4)]

    def preds(who):
        return [Prediction(r["id"], "h", answer(r, who), r["label"], 20 + i % 50, 3, 0.1, False, r["label"])
                for i, r in enumerate(records)]

    config = parse_config({"task": {"type": "classification", "labels": labels},
                           "evaluation": {"n_bootstrap": 200, "acceptance": [{"metric": "accuracy", "min": 0.5}]}})
    old, new = preds("old"), preds("new")
    o, nw = metrics.evaluate(old, config.task, n_boot=200), metrics.evaluate(new, config.task, n_boot=200)
    s = phase.Scored(o, nw, presentation.metric_table(nw, o, n_boot=200))
    return phase, config, records, old, new, s


def test_classification_error_analysis_section():
    pytest.importorskip("matplotlib")
    phase, config, records, old, new, s = _classification_case()
    subset = {"n": 240, "of": 960, "stratified_by": "label", "seed": 0, "ids": [r["id"] for r in records]}
    sec = phase.error_analysis_of(config, records, old, new, s, subset)
    codes = {f.code: f for f in sec.findings}
    assert "channel = phone" in codes["evaluation.weak_slices"].message
    assert "card_arrival messages were answered card_delivery_estimate" in codes["evaluation.confusions"].message
    assert codes["evaluation.test_set_size"].severity == "info" and "on all 960" in codes["evaluation.test_set_size"].message
    assert "seeded sample stratified by label" in codes["evaluation.test_set_size"].message
    captions = [t.caption for t in sec.tables]
    assert captions[0].startswith("accuracy by slice") and any(c.startswith("Per label") for c in captions)
    assert [name for name, _ in sec.figures] == ["confusion_matrix_fine_tuned"]
    v = sec.value
    assert v["slices"]["weakest"][0] == "channel = phone" and len(v["per_label"]) == 4
    assert v["top_confusions"][0]["reference"] == "card_arrival" and "ids" not in v["subset"]
    assert {r["dimension"] for r in v["slices"]["rows"]} == {"input_length", "channel"}


def test_fdr_threshold_both_sides():
    # slices from clearly weak to not weak at all: adjusted p-values fall on both sides of FDR
    rng = np.random.default_rng(5)
    values, new = [], []
    for k, acc in enumerate([0.3, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.8, 0.8, 0.8]):
        values += [f"s{k}"] * 60
        new += list((rng.random(60) < acc).astype(float))
    rep = _report(np.array(new), np.array(new), values)
    ps = [r["p_below"] for r in rep.ranked]
    assert min(ps) < slices.FDR < max(ps)
    assert all(r["below_overall"] == (r["p_below"] < slices.FDR) for r in rep.ranked)
    assert not any(r["regressed"] for r in rep.ranked)  # identical models: nothing regressed


def test_evaluation_slices_setting_is_validated():
    from ftkit.config import parse_config
    from ftkit.errors import ConfigError

    assert parse_config({"evaluation": {"slices": ["channel", "language"]}}).evaluation.slices == ["channel", "language"]
    for bad in (["channel", "channel"], [""]):
        with pytest.raises(ConfigError, match="slices"):
            parse_config({"evaluation": {"slices": bad}})
