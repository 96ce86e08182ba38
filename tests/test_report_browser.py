"""The engagement report in a real browser: headless Chromium renders it without console errors, fetches
nothing from the network, and a screenshot shows a rendered page; `--pdf` prints it.

Skipped when no Chromium/Chrome is installed (`.ci/run` installs Debian's chromium first).
"""
from __future__ import annotations

import html as html_lib
import json
import re
import struct
import subprocess
from pathlib import Path

import pytest

from ftkit.report_pdf import find_chromium, headless_args
from ftkit.reports import build_engagement_report, export_pdf

BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium/chrome binary on PATH (Debian: apt-get install "
                                                        "chromium); the real-browser checks need one")


def open_in_chromium(page: Path, tmp_path: Path, *extra: str) -> tuple[str, list[str], list[str]]:
    """Load ``page``: returns (rendered DOM, console lines, URLs the *page* requested from the network).

    Chromium's own background requests (update checks, sign-in) carry the initiator "not an origin" in the net
    log; anything the page itself asks for carries the page's origin ("null" for file://). DNS is mapped to
    nowhere so nothing leaves the machine even if the page did try.
    """
    netlog = tmp_path / f"netlog-{page.stem}.json"
    command = [BROWSER, *headless_args(tmp_path / f"profile-{page.stem}"), "--enable-logging=stderr", "--v=0",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={netlog}", *extra, "--dump-dom",
               page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console, page_requests(netlog)


def page_requests(netlog: Path) -> list[str]:
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"]
            if e["type"] == start_job and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"
            and re.match(r"(https?|wss?|ftp)://", e["params"]["url"])]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def full_engagement(tiny_chain, tmp_path_factory):
    """Every phase really run (tiny model), copied so the shared chain is never modified."""
    tiny_chain.through("suitability")  # not upstream of the others, so through() alone would skip it
    tiny_chain.through("deployment_plan")
    return tiny_chain.copy(tmp_path_factory.mktemp("browser"))


def test_the_checks_catch_a_page_that_fetches_and_logs(tmp_path):
    # Proves the two checks below can fail: a page with an external stylesheet, image and a console error.
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="stylesheet" href="https://example.invalid/a.css"></head>'
                    '<body><img src="http://127.0.0.1:9/x.png"><script>console.error("boom")</script></body></html>')
    _, console, requests = open_in_chromium(page, tmp_path)
    assert any("boom" in line for line in console)
    assert set(requests) == {"https://example.invalid/a.css", "http://127.0.0.1:9/x.png"}


def test_report_renders_in_chromium_offline_with_no_console_errors(full_engagement, tmp_path):
    index = build_engagement_report(full_engagement)
    dom, console, requests = open_in_chromium(index, tmp_path)
    assert console == [], console
    assert requests == [], f"the report fetched {requests}"

    evaluation = json.loads((full_engagement.latest_run_dir("evaluation") / "results.json").read_text())
    deployment = json.loads((full_engagement.latest_run_dir("deployment_plan") / "results.json").read_text())
    shown = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", dom)).split())
    assert "Executive summary" in shown and "Documentation index" in shown and "The chain verifies" in shown
    verdict = {"go": "GO", "no_go": "NO-GO", "pending": "PENDING"}[evaluation["headline"]["verdict"]]
    assert f"Evaluation verdict {verdict} action: {evaluation['headline']['action']}" in shown
    headline = evaluation["results"]["metrics"][evaluation["headline"]["headline_metric"]]
    assert (f"{evaluation['headline']['headline_metric']} (headline) {headline['baseline']:,.3f}" in shown
            and f"{headline['fine_tuned']:,.3f}" in shown)
    assert f"${deployment['headline']['monthly_cost_usd']:,.2f}" in shown
    assert dom.count("data:image/png;base64,") >= 6  # figures of every phase, embedded
    # With every phase really run, the documentation index finds every piece of evidence ftkit produces.
    statuses = re.findall(r'data-status="(\w+)"', dom)
    assert statuses and set(statuses) == {"present", "out_of_scope"}, sorted(set(statuses))
    # No attribute points to the network: only anchors, data URIs and files inside the engagement folder.
    for value in re.findall(r'(?:src|href)="([^"]*)"', dom):
        assert value.startswith(("#", "data:image/png;base64,", "../")), value


def test_report_screenshot_shows_a_rendered_page(full_engagement, tmp_path):
    index = build_engagement_report(full_engagement)
    shot = tmp_path / "report.png"
    subprocess.run([BROWSER, *headless_args(tmp_path / "profile"), f"--screenshot={shot}", "--window-size=1280,2000",
                    "--hide-scrollbars", index.resolve().as_uri()], capture_output=True, timeout=120, check=True)
    assert png_size(shot) == (1280, 2000)
    # A blank or error page compresses to a few kB; tables, text and the embedded figures do not.
    assert shot.stat().st_size > 50_000


def test_pdf_export_prints_the_report(full_engagement):
    build_engagement_report(full_engagement)
    pdf = export_pdf(full_engagement)
    data = pdf.read_bytes()
    assert pdf == full_engagement.report_dir / "engagement.pdf"
    assert data.startswith(b"%PDF-") and len(data) > 50_000 and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) > 3  # many pages: every section expanded for print
    leftovers = [p.name for p in full_engagement.report_dir.iterdir() if p.name.startswith(".")]
    assert leftovers == [], "temp files are removed"
