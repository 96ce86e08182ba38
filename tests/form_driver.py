"""Drive one of ftkit's self-contained HTML review forms in headless Chromium and capture the CSV its Download
button makes (the ratings/review forms of ftkit.review_form): the A/B sheet and the synthetic-candidate review."""
from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

from ftkit.report_pdf import headless_args

# Runs right after the form's own script: capture the CSV blob into <pre id="csv-out"> and keep the page.
_CAPTURE = """<script>
    var realCreate = URL.createObjectURL;
    URL.createObjectURL = function (blob) {
      blob.text().then(function (t) { var p = document.createElement("pre"); p.id = "csv-out"; p.textContent = t;
                                       document.body.appendChild(p); });
      return realCreate.call(URL, blob);
    };
    HTMLAnchorElement.prototype.click = function () {};  // keep the page: capture the CSV, skip the download
    FILL
    document.getElementById("dl").click();
    </script></body>"""


def downloaded_csv(browser: str, page: str, fill_js: str, folder: Path, name: str = "form.html") -> str:
    """The CSV text the form downloads after ``fill_js`` (JavaScript that fills the form) ran on ``page``."""
    form = folder / name
    form.write_text(page.replace("</body>", _CAPTURE.replace("FILL", fill_js)), encoding="utf-8")
    done = subprocess.run([browser, *headless_args(folder / "profile"), "--virtual-time-budget=5000",
                           "--dump-dom", form.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="csv-out">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stdout[-2000:]
    return html.unescape(match.group(1))
