"""The reports in a real browser: headless Chromium renders the engagement report without console errors,
fetches nothing from the network, and a screenshot shows a rendered page; `--pdf` prints it. Every phase's
report.html is clean for a client: figures decode as images, no `<Figure size ...>` text, no stderr blocks or
progress bars, no stray reprs, no local paths outside the engagement folder, no empty tables.

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

from ftkit.config import load_config
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


# Injected into a copy of a page: after load, measure what a reader sees and put it in the DOM for --dump-dom.
PROBE = """<script>
window.addEventListener("load", () => {
  const probe = {
    images: [...document.images].map(i => ({complete: i.complete, width: i.naturalWidth, alt: i.alt})),
    text: document.body.innerText,
    stderr_blocks: document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length,
    empty_tables: [...document.querySelectorAll("table")].filter(t => !t.querySelector("td")).map(t => t.innerText),
  };
  const out = document.createElement("pre");
  out.id = "ftkit-probe";
  out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
});
</script>"""


def probe_page(page: Path, tmp_path: Path) -> dict:
    """What Chromium shows of ``page``: its images (decoded or not), visible text, stderr blocks, empty tables."""
    copy = tmp_path / f"probe-{page.parent.parent.parent.name}-{page.stem}.html"
    text = page.read_text(encoding="utf-8")
    copy.write_text(text.replace("</body>", PROBE + "</body>") if "</body>" in text else text + PROBE, encoding="utf-8")
    dom, console, requests = open_in_chromium(copy, tmp_path, "--virtual-time-budget=10000")
    assert requests == [], f"{page} fetched {requests}"
    found = re.search(r'<pre id="ftkit-probe">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not run in {page}"
    return json.loads(html_lib.unescape(found.group(1)))


def report_problems(page: Path, engagement_dir: Path, tmp_path: Path, ran_in: Path | None = None) -> list[str]:
    """Everything that makes a phase report unfit to hand to a client (empty list = clean). ``ran_in``: where the
    engagement folder was when the run happened, if it has been copied since (its paths are its own too)."""
    probe = probe_page(page, tmp_path)
    problems, text = [], probe["text"]
    figures = sorted((page.parent / "figures").glob("*.png")) if (page.parent / "figures").is_dir() else []
    broken = [i for i in probe["images"] if not (i["complete"] and i["width"] > 0)]
    if broken:
        problems.append(f"{len(broken)} image(s) do not decode")
    if len(probe["images"]) - len(broken) < len(figures):
        problems.append(f"{len(figures)} figure(s) saved but only {len(probe['images']) - len(broken)} image(s) shown")
    unnamed = [i for i in probe["images"] if i["alt"] in ("", "No description has been provided for this image")]
    if unnamed:
        problems.append(f"{len(unnamed)} image(s) without a name (alt text)")
    if "<Figure size" in text:
        problems.append("a figure is shown as text: " + re.search(r"<Figure size[^>]*>", text).group(0))
    if probe["stderr_blocks"]:
        problems.append(f"{probe['stderr_blocks']} stderr block(s)")
    for pattern, what in ((r"\d+%\|", "a progress bar"), (r"\b\w*Warning: ", "a library warning"),
                          (r"(?:Posix|Windows)Path\(", "a stray Path repr"), (r"<[\w.]+ object at 0x", "an object repr")):
        if re.search(pattern, text):
            problems.append(f"{what}: {re.search('.{0,60}' + pattern + '.{0,60}', text).group(0)!r}")
    # Allowed: the engagement's own folder, and the base model when engagement.yaml names it by a local folder.
    roots = [str(engagement_dir.resolve()), str((ran_in or engagement_dir).resolve())]
    if (engagement_dir / "engagement.yaml").is_file():
        roots.append(load_config(engagement_dir / "engagement.yaml").base_model.id.rstrip("/"))
    foreign = sorted({p for p in re.findall(r"(?<![\w.:/])/(?:[\w.+-]+/)+[\w.+-]*", text)
                      if not any(p == root or p.startswith(root + "/") for root in roots)})
    if foreign:
        problems.append(f"local paths outside the engagement folder: {foreign[:5]}")
    if probe["empty_tables"]:
        problems.append(f"empty table(s) without an explicit 'none': {probe['empty_tables']}")
    return problems


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


def test_the_report_checks_catch_an_unclean_phase_report(tmp_path):
    # Proves report_problems can fail on each problem of a report made before the clean-up.
    run = tmp_path / "eng" / "phases" / "05_evaluation" / "runs" / "r1"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "a.png").write_bytes(b"not shown")
    page = run / "report.html"
    page.write_text('<!DOCTYPE html><html><body><img alt="" src="data:image/png;base64,AAAA">'
                    '<div data-mime-type="application/vnd.jupyter.stderr"><pre>generating:  50%|##   | 6/12 [00:01<00:01]'
                    '</pre></div><pre>&lt;Figure size 1110x360 with 1 Axes&gt;</pre>'
                    "<pre>/usr/lib/python3/site-packages/x.py:3: FutureWarning: old</pre>"
                    "<pre>PosixPath('/tmp/elsewhere/results.json')</pre>"
                    "<table><caption>Regressions (0)</caption></table></body></html>")
    problems = " | ".join(report_problems(page, tmp_path / "eng", tmp_path))
    for expected in ("do not decode", "1 figure(s) saved but only 0", "without a name", "figure is shown as text",
                     "stderr block",
                     "progress bar", "library warning", "stray Path repr", "outside the engagement folder",
                     "empty table"):
        assert expected in problems, (expected, problems)


def test_every_phase_report_is_clean_for_a_client(full_engagement, tiny_chain, tmp_path):
    from ftkit.phases import ordered
    from ftkit.reports import RUN_LOG

    problems = {}
    for phase in ordered():
        run_dir = full_engagement.latest_run_dir(phase)
        found = report_problems(run_dir / "report.html", full_engagement.path, tmp_path, tiny_chain.engagement.path)
        if found:
            problems[phase.name] = found
        assert list((run_dir / "figures").glob("*.png")), f"{phase.name} draws at least one figure"
        # What the report leaves out is kept: the run log has the stderr and progress the notebook printed.
        log = (run_dir / RUN_LOG).read_text()
        assert log.startswith("ftkit run log:"), log[:200]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert RUN_LOG in manifest["outputs"], "the run log is hashed with the other outputs"
    assert problems == {}, problems
    evaluation_log = (full_engagement.latest_run_dir("evaluation") / RUN_LOG).read_text()
    assert "[stderr]" in evaluation_log and "generating:" in evaluation_log


def test_phase_report_screenshots_show_their_figures(full_engagement, tmp_path):
    # Two phase reports as a client sees them; the pictures are kept under tmp_path for a person to look at.
    for phase in ("evaluation", "deployment_plan"):
        page = full_engagement.latest_run_dir(phase) / "report.html"
        shot = tmp_path / f"{phase}.png"
        subprocess.run([BROWSER, *headless_args(tmp_path / f"profile-shot-{phase}"), f"--screenshot={shot}",
                        "--window-size=1280,4000", "--hide-scrollbars", page.resolve().as_uri()],
                       capture_output=True, timeout=120, check=True)
        assert png_size(shot) == (1280, 4000) and shot.stat().st_size > 100_000
