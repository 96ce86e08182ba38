"""The review sheet's HTML form in headless Chromium: its own CSV download reads back with read_review, exact
decisions, edited answers and reviewer, with formula-leading cells neutralised."""
from __future__ import annotations

import json

import pytest
from form_driver import downloaded_csv  # tests/ is on sys.path (its conftest.py, rootdir import mode)

from ftkit.report_pdf import find_chromium

BROWSER = find_chromium()


@pytest.mark.skipif(BROWSER is None, reason="no chromium/chrome binary on PATH (Debian: apt-get install chromium)")
def test_the_forms_download_is_read_back_exactly(tmp_path):
    from ftkit.augmentation.review import read_review, write_review

    kept = [{"cid": f"c{i}", "call": 0, "target": "billing", "seed": 0, "prompt_sha256": "p", "label": "billing",
             "messages": [{"role": "user", "content": f"<b>question</b> {i}"},
                          {"role": "assistant", "content": '{"category": "billing"}'}]} for i in range(3)]
    paths = write_review(tmp_path / "sheet", kept)
    key = json.loads(paths["key"].read_text())
    page = paths["html"].read_text()
    assert "<b>question</b>" not in page and "&lt;b&gt;question&lt;/b&gt; 0" in page  # escaped, not markup
    reviewer = "=cmd|' /C calc'!A0"
    fill = """document.getElementById("reviewer").value = REVIEWER;
    document.querySelectorAll(".item").forEach(function (el, i) {
      el.querySelectorAll("input[type=radio]")[i].checked = true;
      var t = el.querySelectorAll("textarea");
      t[0].value = i === 1 ? '{"category": "account"}' : "";
      t[1].value = ["@SUM(1+1)", "+1", "fine"][i];
    });""".replace("REVIEWER", json.dumps(reviewer))
    text = downloaded_csv(BROWSER, page, fill, tmp_path, "review.html")
    assert "\"'@SUM(1+1)\"" in text and "\"'=cmd" in text  # no cell starts a formula
    filled = tmp_path / "filled.csv"
    filled.write_bytes(text.encode("utf-8"))
    decisions, got = read_review(filled, key, lambda item, answer: "")
    assert got == reviewer
    assert [d["decision"] for d in decisions.values()] == ["accept", "edit", "reject"]
    assert [d["comment"] for d in decisions.values()] == ["@SUM(1+1)", "+1", "fine"]
    assert list(decisions.values())[1]["answer"] == '{"category": "account"}'
