"""The review sheet's HTML form in headless Chromium: its own CSV download reads back with read_review, exact
decisions, edited answers and reviewer, with formula-leading cells neutralised."""
from __future__ import annotations

import html as html_lib
import json
import re
import subprocess

import pytest

from ftkit.report_pdf import find_chromium, headless_args

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
    driver = """<script>
    var realCreate = URL.createObjectURL;
    URL.createObjectURL = function (blob) {
      blob.text().then(function (t) { var p = document.createElement("pre"); p.id = "csv-out"; p.textContent = t;
                                       document.body.appendChild(p); });
      return realCreate.call(URL, blob);
    };
    HTMLAnchorElement.prototype.click = function () {};
    document.getElementById("reviewer").value = REVIEWER;
    document.querySelectorAll(".item").forEach(function (el, i) {
      el.querySelectorAll("input[type=radio]")[i].checked = true;
      var t = el.querySelectorAll("textarea");
      t[0].value = i === 1 ? '{"category": "account"}' : "";
      t[1].value = ["@SUM(1+1)", "+1", "fine"][i];
    });
    document.getElementById("dl").click();
    </script></body>""".replace("REVIEWER", json.dumps(reviewer))
    form = tmp_path / "review.html"
    form.write_text(page.replace("</body>", driver), encoding="utf-8")
    done = subprocess.run([BROWSER, *headless_args(tmp_path / "profile"), "--virtual-time-budget=5000",
                           "--dump-dom", form.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="csv-out">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stdout[-2000:]
    text = html_lib.unescape(match.group(1))
    assert "\"'@SUM(1+1)\"" in text and "\"'=cmd" in text  # no cell starts a formula
    filled = tmp_path / "filled.csv"
    filled.write_bytes(text.encode("utf-8"))
    decisions, got = read_review(filled, key, lambda item, answer: "")
    assert got == reviewer
    assert [d["decision"] for d in decisions.values()] == ["accept", "edit", "reject"]
    assert [d["comment"] for d in decisions.values()] == ["@SUM(1+1)", "+1", "fine"]
    assert list(decisions.values())[1]["answer"] == '{"category": "account"}'
