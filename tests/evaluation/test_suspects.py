"""Suspect labels: a tiny model really trained on a separable set ranks a planted wrong label first; the sheet's
CSV is exactly the contract with `data.corrections`; the HTML sheet is self-contained and exports that CSV in a
real browser; the rule's threshold on both sides."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftkit.evaluation import suspects

sys.path.insert(0, str(Path(__file__).parent))
from suspects_helpers import KEYWORDS, dataset, train_tiny  # noqa: E402

LABELS = sorted(KEYWORDS)


@pytest.fixture(scope="module")
def trained(tiny_model_dir):
    """The tiny model trained on 36 clean examples (12 per label), and held-out examples with one wrong label."""
    train = dataset(12, 0, "train")
    model, tokenizer = train_tiny(tiny_model_dir, train, steps=60)
    held = dataset(4, 100, "test")
    planted = held[0]
    wrong = next(label for label in LABELS if label != planted["label"])
    planted["true_label"], planted["label"] = planted["label"], wrong
    planted["messages"][-1]["content"] = wrong
    pairs = [("train", r) for r in train] + [("test", r) for r in held]
    return model, tokenizer, pairs, planted


@pytest.mark.parametrize("method", ["first_token", "full"])
def test_a_planted_wrong_label_is_ranked_first_and_flagged(trained, method):
    model, tokenizer, pairs, planted = trained
    answers = suspects.label_answers([r for _, r in pairs], LABELS)
    s = suspects.score(model, tokenizer, pairs, "classification", LABELS, answers, max_seq_length=64, method=method)
    assert s.method == method and len(s.probs) == len(pairs)
    assert all(abs(sum(p) - 1) < 1e-6 for p in s.probs)
    ranked = suspects.rank(s)
    top = ranked["rows"][0]
    assert top["id"] == planted["id"] and top["line"] == planted["origin"]["line"] and top["file"] == "tickets.jsonl"
    assert top["model_answer"] == planted["true_label"] and top["given_answer"] == planted["label"]
    assert top["score"] < 0.2 < ranked["rows"][1]["score"]  # p(given label): the model rejects it, and only it
    assert top["cleanlab_issue"] is True and "cleanlab: label issue" in top["score_kind"]
    assert ranked["n_out_of_sample"] == 12 and ranked["n_flagged"] >= 1
    kinds = {r["split"]: r["score_kind"] for r in ranked["rows"]}
    assert "in-sample" in kinds["train"] and "out-of-sample" in kinds["test"]
    assert all(r["cleanlab_issue"] is None for r in ranked["rows"] if r["in_sample"])  # never on in-sample scores


def test_both_label_methods_agree_and_auto_picks_first_token(trained):
    model, tokenizer, pairs, _ = trained
    answers = suspects.label_answers([r for _, r in pairs], LABELS)
    auto = suspects.score(model, tokenizer, pairs, "classification", LABELS, answers, max_seq_length=64)
    full = suspects.score(model, tokenizer, pairs, "classification", LABELS, answers, max_seq_length=64, method="full")
    assert auto.method == "first_token"  # "billing", "security", "shipping" start with different tokens
    given = suspects.label_index(auto.entries, LABELS)
    a = [p[g] for p, g in zip(auto.probs, given)]
    f = [p[g] for p, g in zip(full.probs, given)]
    # The label is decided by its first token here, so whole-answer probabilities follow the first token's.
    assert max(abs(x - y) for x, y in zip(a, f)) < 0.1
    assert auto.loss == pytest.approx(full.loss)


def test_loss_only_ranking_for_other_tasks(trained):
    model, tokenizer, pairs, planted = trained
    s = suspects.score(model, tokenizer, pairs, "free_text", max_seq_length=64)
    ranked = suspects.rank(s)
    assert s.method == "loss" and s.probs is None and ranked["by"] == "loss"
    assert ranked["rows"][0]["id"] == planted["id"]
    assert ranked["rows"][0]["score"] > 3 * ranked["rows"][1]["score"]  # nats/token, highest first
    assert ranked["rows"][0]["score_kind"] == "loss per token, out-of-sample"


def test_the_prefix_cache_changes_no_score(trained):
    """Rows sharing a system prompt reuse its key/value cache; each row scored alone gives the same numbers."""
    model, tokenizer, pairs, _ = trained
    system = "You sort support tickets into billing, shipping or security. Answer with the label only, nothing else."
    rows = suspects._tokenize(tokenizer, [suspects._conversation(r, system) for _, r in pairs[:6]], 96)
    pad = tokenizer.pad_token_id
    together = suspects.sequence_logprobs(model, rows, pad, batch_size=3)
    alone = [suspects.sequence_logprobs(model, [row], pad)[0] for row in rows]
    assert [n for _, n, _ in together] == [n for _, n, _ in alone]
    assert [t for t, _, _ in together] == pytest.approx([t for t, _, _ in alone], abs=1e-4)


def _ranked_rows():
    rows = [{"rank": 1, "id": "a", "split": "test", "file": "t.csv", "line": 3, "input": "Call +44 20 7946 0958 now",
             "given_answer": "=HYPERLINK(\"http://x\")", "model_answer": "billing", "score": 0.01,
             "score_kind": "p(given label), out-of-sample; cleanlab: label issue", "in_sample": False},
            {"rank": 2, "id": "b", "split": "train", "file": "t.csv", "line": 9, "input": "</script><b>" + "x" * 2000,
             "given_answer": "shipping", "model_answer": "billing", "score": 0.3,
             "score_kind": "p(given label), in-sample (trained on)", "in_sample": True}]
    return suspects.sheet_rows(rows)


def test_csv_columns_are_the_contract_and_cells_are_safe(tmp_path):
    files = suspects.write_sheet(tmp_path, _ranked_rows())
    text = files["csv"].read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    assert header == ["rank", "file", "line", "split", "input", "given_answer", "model_answer", "score", "score_kind",
                      "decision", "new_answer", "reviewer", "comment"]
    body = list(reader)
    assert [r[0] for r in body] == ["1", "2"] and body[0][1:4] == ["t.csv", "3", "test"]
    assert body[0][5] == "'=HYPERLINK(\"http://x\")"  # formula-injection safe (csv_cell)
    assert "7946" not in body[0][4] and "**58" in body[0][4]  # PII masked for the reviewers
    assert len(body[1][4]) == suspects.INPUT_CHARS
    assert all(r[9:] == ["", "", "", ""] for r in body)  # decision, new_answer, reviewer, comment empty
    assert "in-sample" in body[1][8]


def test_html_sheet_is_self_contained_and_escapes(tmp_path):
    page = suspects.write_sheet(tmp_path, _ranked_rows())["html"].read_text()
    assert "<script src" not in page and "<link" not in page and "https://" not in page
    assert "</script><b>" not in page and "&lt;/script&gt;&lt;b&gt;" in page  # shown escaped, JSON island too
    island = page.split('id="rows">')[1].split("</script>")[0]
    assert json.loads(island)[0]["rank"] == 1
    assert all(f'<option value="{d}">' in page for d in suspects.DECISIONS)


def test_html_sheet_exports_the_contract_csv_in_chromium(tmp_path):
    from ftkit.report_pdf import find_chromium, headless_args

    browser = find_chromium()
    if browser is None:
        pytest.skip("no chromium/chrome binary on PATH; the real-browser check needs one")
    page = suspects.write_sheet(tmp_path, _ranked_rows())["html"]
    # After load: a reviewer fills row 1 (fix) and row 2 (keep), presses Download; the CSV lands in the DOM.
    probe = """<script>window.addEventListener("load", function(){
      window.Blob = function(parts){ var pre = document.createElement("pre"); pre.id = "csv-out";
        pre.textContent = parts.join(""); document.body.appendChild(pre); };
      URL.createObjectURL = function(){ return "#"; }; HTMLAnchorElement.prototype.click = function(){};
      document.getElementById("reviewer").value = "Ann";
      var trs = document.querySelectorAll("tr[data-k]");
      trs[0].querySelector(".decision").value = "fix"; trs[0].querySelector(".new").value = "-shipping";
      trs[1].querySelector(".decision").value = "keep"; trs[1].querySelector(".comment").value = "right, says, so";
      document.body.dispatchEvent(new Event("change"));
      document.getElementById("dl").click();
    });</script>"""
    copy = tmp_path / "probe.html"
    copy.write_text(page.read_text().replace("</body>", probe + "</body>"), encoding="utf-8")
    result = subprocess.run([browser, *headless_args(tmp_path / "profile"), "--virtual-time-budget=5000",
                             "--dump-dom", copy.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    import html

    out = html.unescape(result.stdout.split('id="csv-out">')[1].split("</pre>")[0]).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == list(suspects.SUSPECT_COLUMNS)
    assert (rows[0]["decision"], rows[0]["new_answer"], rows[0]["reviewer"]) == ("fix", "'-shipping", "Ann")
    assert (rows[1]["decision"], rows[1]["comment"], rows[1]["file"], rows[1]["line"]) == ("keep", "right, says, so",
                                                                                           "t.csv", "9")
    assert rows[0]["given_answer"] == "'=HYPERLINK(\"http://x\")"  # formula-safe as in the written CSV


def test_select_is_bounded_proportional_and_seeded():
    splits = {"train": [{"id": f"t{i}"} for i in range(80)], "validation": [{"id": f"v{i}"} for i in range(10)],
              "test": [{"id": f"x{i}"} for i in range(10)]}
    picked = suspects.select(splits, 20, seed=1)
    counts = {name: sum(1 for s, _ in picked if s == name) for name in suspects.SPLITS}
    assert counts == {"train": 16, "validation": 2, "test": 2}
    assert picked == suspects.select(splits, 20, seed=1) and picked != suspects.select(splits, 20, seed=2)
    odd = suspects.select({"train": [{}] * 5, "validation": [{}] * 5, "test": [{}] * 5}, 4)
    assert len(odd) == 4 and {s for s, _ in odd} == set(suspects.SPLITS)  # rounding never exceeds the bound
    assert len(suspects.select(splits, 0)) == 100 and len(suspects.select({"test": [{"id": "a"}]}, 5)) == 1


def _ranked(n_oos: int, flagged: int, by: str = "p_given") -> dict:
    return {"rows": [{"in_sample": False}] * n_oos, "by": by, "notes": [], "n_out_of_sample": n_oos,
            "n_flagged": flagged, "cleanlab_ran": True}


def test_finding_warns_above_the_label_issue_share_and_is_info_at_or_below():
    at = suspects.suspects_finding(_ranked(100, 5), 100, 50, "s.html")  # 5 % = LABEL_ISSUE_SHARE_WARN
    above = suspects.suspects_finding(_ranked(100, 6), 100, 50, "s.html")
    assert suspects.LABEL_ISSUE_SHARE_WARN == 0.05
    assert (at.severity, above.severity) == ("info", "warning")
    assert "5 of 100 out-of-sample" in at.message and "s.html" in at.next_step
    loss = suspects.suspects_finding(_ranked(10, 0, by="loss"), 10, 5, "s.html")
    assert loss.severity == "info" and "loss-only" in loss.message


def test_settings_are_validated_with_the_field_named():
    from ftkit.config import parse_config
    from ftkit.errors import ConfigError

    assert parse_config({}).evaluation.suspect_labels.max_examples == 300
    with pytest.raises(ConfigError, match="suspect_labels.max_examples must be 0 or more, got -1"):
        parse_config({"evaluation": {"suspect_labels": {"max_examples": -1}}})
    with pytest.raises(ConfigError, match="listed must be at least 1"):
        parse_config({"evaluation": {"suspect_labels": {"listed": 0}}})


def test_rank_on_hand_made_probabilities_flags_only_out_of_sample_and_notes_unknown_labels():
    entries, probs = [], []
    for i in range(20):
        label = "a" if i % 2 else "b"
        split = "train" if i < 4 else "test"
        entries.append(suspects.Entry(f"e{i}", split, "f.csv", i + 2, "x", label, label))
        probs.append([0.9, 0.1] if label == "a" else [0.1, 0.9])
    probs[7] = [0.03, 0.97]  # a test example labelled "a" that the model calls "b"
    probs[1] = [0.02, 0.98]  # the same in train: in-sample, ranked but never flagged by cleanlab
    entries.append(suspects.Entry("odd", "test", "f.csv", 99, "x", "zzz", "zzz"))
    probs.append([0.5, 0.5])
    s = suspects.Scoring(entries, [0.1] * len(entries), ["a", "b"], ["A", "B"], probs, "full")
    ranked = suspects.rank(s)
    assert [r["id"] for r in ranked["rows"][:2]] == ["e1", "e7"]  # 1 - p(given): 0.98, then 0.97
    flags = {r["id"]: r["cleanlab_issue"] for r in ranked["rows"]}
    assert flags["e7"] is True and flags["e1"] is None and sum(bool(f) for f in flags.values()) == 1
    assert ranked["rows"][1]["model_answer"] == "B" and ranked["n_out_of_sample"] == 16
    assert "odd" not in flags and "outside the label set" in ranked["notes"][0]
    one_label = suspects.cleanlab_issues([0, 0, 0], [[0.9, 0.1]] * 3)
    assert one_label[0] is None and "at least 2 labels" in one_label[1]
