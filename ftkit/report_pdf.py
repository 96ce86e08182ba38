"""PDF export of the engagement report with headless Chromium's ``--print-to-pdf``.

Chromium renders the same self-contained HTML a reviewer opens, so the PDF and the page cannot disagree; no
Python PDF library (and its fonts and CSS gaps) is needed. The browser is optional: without one, the error
names what to install, and printing ``report/index.html`` from any browser gives the same result.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ftkit.errors import FtkitError, MissingDependency
from ftkit.fsutil import DEFAULT_FILE_MODE

# Debian/Ubuntu package names first, then Google Chrome's; FTKIT_CHROMIUM overrides all of them.
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")
INSTALL_HINT = ("sudo apt-get install chromium (Debian/Ubuntu; chromium-browser on older Ubuntu), or install Google "
                "Chrome, or set FTKIT_CHROMIUM=/path/to/chrome; alternatively open report/index.html in a browser "
                "and print it to PDF")
PRINT_TIMEOUT_S = 180


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary, or None."""
    override = os.environ.get("FTKIT_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    return next((path for path in map(shutil.which, BROWSER_NAMES) if path), None)


def headless_args(profile_dir: str | os.PathLike) -> list[str]:
    """Flags for a quiet, offline, single-shot headless run.

    --no-sandbox: containers and CI runners as root cannot start Chromium's sandbox; the page is ftkit's own
    static HTML with no scripts. The --disable-* flags stop Chromium's own background traffic (updates, sync,
    field trials), so a print makes no network connection at all.
    """
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--mute-audio", f"--user-data-dir={profile_dir}"]


def print_to_pdf(html_path: Path, pdf_path: Path, browser: str | None = None) -> Path:
    """Print ``html_path`` to ``pdf_path`` (temp file in the same folder, then renamed: never a half PDF)."""
    browser = browser or find_chromium()
    if not browser:
        raise MissingDependency("chromium", "PDF export of the engagement report (ftkit report --pdf)", INSTALL_HINT)
    pdf_path = Path(pdf_path)
    fd, tmp = tempfile.mkstemp(prefix=f".{pdf_path.name}.", suffix=".tmp", dir=pdf_path.parent)
    os.close(fd)
    os.chmod(tmp, DEFAULT_FILE_MODE)  # mkstemp's 0600 would make the client deliverable owner-only
    try:
        with tempfile.TemporaryDirectory(prefix="ftkit-chromium-") as profile:
            command = [browser, *headless_args(profile), "--no-pdf-header-footer",
                       f"--print-to-pdf={tmp}", Path(html_path).resolve().as_uri()]
            result = _run(command)
        if result.returncode != 0 or not _looks_like_pdf(Path(tmp)):
            tail = (result.stderr or "").strip().splitlines()[-3:]
            raise FtkitError(f"{browser} could not print {html_path} to PDF (exit {result.returncode}): "
                             f"{' | '.join(tail) or 'no output'}. Open the HTML in a browser and print it instead.")
        os.replace(tmp, pdf_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return pdf_path


def _run(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=PRINT_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise FtkitError(f"{command[0]} did not finish printing within {PRINT_TIMEOUT_S} s; "
                         f"open report/index.html in a browser and print it instead.") from err
    except OSError as err:
        raise FtkitError(f"Cannot start {command[0]}: {err.strerror}. {INSTALL_HINT}.") from err


def _looks_like_pdf(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(5) == b"%PDF-"
    except OSError:
        return False
