"""Bad-input fuzzing of the command line with hypothesis: client names (path traversal, unicode, control
characters, very long), phase names and ``-p key=value`` parameters.

Every bad command ends with exit code 2 (usage) or 1 (refused) and a one-paragraph message, never a traceback,
and nothing appears anywhere under the temporary root except a new engagement with a valid name, directly in
the engagements root. In-process (``ftkit.cli.main``) for speed, plus one real subprocess check of stderr.
"""
from __future__ import annotations

import json
import shutil
import string
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagement_helpers import sample_records
from hardening_helpers import tree
from ftkit import runner
from ftkit.cli import main
from ftkit.engagement import check_client_name
from ftkit.errors import PhaseFailed, UsageError
from ftkit.phases import ordered

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_nasty = st.sampled_from([
    "", ".", "..", "../evil", "../../etc/passwd", "a/b", "/abs", "~root", "con", "NUL", "a" * 65, "a" * 5000,
    "ok\x00", "ok\n", "tab\there", "-rf", "--root", "a..b", " lead", "trail.", "C:\\win", "\u202eevil", "émile",
    "客户", "acme\r", "acme/..", "$(touch x)", "`id`", "acme;rm", "%2e%2e", ".hidden",
])
NAMES = st.one_of(_nasty, st.text(max_size=80), st.text(string.printable, max_size=80),
                  st.text(min_size=200, max_size=3000), _nasty.map(lambda s: "acme" + s))
PHASES = st.one_of(st.sampled_from([p.name for p in ordered()] + ["trainig", "SUITABILITY", "../01_suitability"]),
                   st.text(max_size=30))
_keys = st.sampled_from(["interactive", "shots", "workers", "use_tokenizer", "run_dir", "engagement_dir", "api_key",
                         "hf_token", "password", "max_examples", "api_key_env"]) | st.text(max_size=20)
_values = st.sampled_from(["1", "007", "true", "maybe", "-1", "1e999", "nan", "[1,2]", "{}", "9" * 5000, "", "=",
                           "../../x"]) | st.text(max_size=40)
PARAMS = st.lists(st.one_of(st.tuples(_keys, _values).map("=".join), st.text(max_size=30)), max_size=3)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """tmp root: engagements/acme (a real engagement), a data file and an empty working folder."""
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement

    top = tmp_path_factory.mktemp("fuzz-cli")
    data = top / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_records(30)), encoding="utf-8")
    create_engagement("acme", [data], top / "engagements", settings=DEMO_SETTINGS)
    (top / "cwd").mkdir()
    return top


@pytest.fixture
def cli(sandbox, monkeypatch, capsys):
    """cli(argv) -> (exit code, stderr), with the working folder inside the sandbox."""
    monkeypatch.chdir(sandbox / "cwd")

    def run(argv: list[str]) -> tuple[int, str]:
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse's own usage errors
            code = exit_.code
        return code, capsys.readouterr().err
    return run


# The engagement lock's OS lock file stays in place once made (waiters must share one inode; ftkit/lock.py); it holds
# nothing and is not evidence. The holder note (.ftkit.lock) must still never be left behind.
OS_LOCK = (".ftkit.lock.os",)


def _one_paragraph(err: str) -> None:
    text = err.strip()
    assert text and "Traceback" not in text and "\n\n" not in text, text
    assert text.startswith("ftkit: ") or "error:" in text, text  # ftkit's message, or argparse's usage line


def _validate_only(engagement, phase, overrides=None, cell_timeout_s=None, progress=True):
    """Stands in for run_phase: everything up to the notebook (parameter checks included), no kernel."""
    phase = runner.get_phase(phase) if isinstance(phase, str) else phase
    runner.validate(runner.notebook_for(phase, engagement), overrides or {}, phase.name)
    raise PhaseFailed("fuzz test: parameters accepted; the notebook is not executed here")


@FUZZ
@given(client=NAMES | st.just("acme"), phase=PHASES, params=PARAMS)
def test_run_refuses_bad_names_and_parameters_cleanly(sandbox, cli, monkeypatch, client, phase, params):
    monkeypatch.setattr(runner, "run_phase", _validate_only)
    before = tree(sandbox, skip=OS_LOCK)
    argv = ["run", client, "--phase", phase, *[a for p in params for a in ("-p", p)],
            "--root", str(sandbox / "engagements")]
    code, err = cli(argv)
    assert code in (1, 2), (argv, err)
    _one_paragraph(err)
    assert tree(sandbox, skip=OS_LOCK) == before  # no run folder, lock or stray file anywhere


@FUZZ
@given(name=NAMES, task=st.none() | st.sampled_from(["classification", "poetry", "../x", ""]))
def test_new_refuses_unsafe_names_and_creates_nothing_outside_the_root(sandbox, cli, name, task):
    root = sandbox / "engagements"
    before = tree(sandbox, skip=OS_LOCK)
    argv = ["new", name, "--data", str(sandbox / "tickets.jsonl"), "--root", str(root)]
    code, err = cli(argv + (["--task", task] if task is not None else []))
    after = tree(sandbox, skip=OS_LOCK)
    if code == 0:  # a valid name: exactly one new engagement, directly under the root
        assert _is_safe(name) and (root / name / "engagement.yaml").is_file()
        assert {k for k in after if k not in before} == {k for k in after if k.startswith(f"engagements/{name}/")
                                                        or k == f"engagements/{name}"}
        shutil.rmtree(root / name)
        return
    assert code in (1, 2), (argv, err)
    _one_paragraph(err)
    assert after == before
    if not _is_safe(name):
        assert code == 2 and ("not a safe folder name" in err or "error:" in err)  # ftkit's check or argparse's


def _is_safe(name: str) -> bool:
    try:
        check_client_name(name)
    except UsageError:
        return False
    return True


NASTY_COMMANDS = [
    ["new", "../../evil\x01", "--data", "{data}", "--root", "{root}"],
    ["new", "é" * 300, "--data", "{data}", "--root", "{root}"],
    ["new", "fine", "--data", "/no/such/file.jsonl", "--root", "{root}"],
    ["run", "../acme", "--root", "{root}"],
    ["run", "acme", "--phase", "training\x7f", "--root", "{root}"],
    ["run", "acme", "--phase", "suitability", "-p", "interactive=maybe", "--root", "{root}"],
    ["run", "acme", "--phase", "suitability", "-p", "api_key=sk-123", "--root", "{root}"],
    ["run", "acme", "--phase", "baseline", "--root", "{root}"],
    ["verify", "客户", "--root", "{root}"],
    ["data", "check", "/no/such/file.jsonl"],
    ["augment", "../acme", "--root", "{root}"],
    ["augment", "acme", "--root", "{root}"],
    ["augment", "acme", "--review", "/no/such/review.csv", "--root", "{root}"],
]


@pytest.mark.parametrize("argv", NASTY_COMMANDS, ids=range(len(NASTY_COMMANDS)))
def test_a_real_process_never_prints_a_traceback(sandbox, argv):
    """The same through a real `ftkit` process: what a consultant sees on the terminal."""
    before = tree(sandbox, skip=OS_LOCK)
    argv = [a.format(data=sandbox / "tickets.jsonl", root=sandbox / "engagements") for a in argv]
    done = subprocess.run([sys.executable, "-m", "ftkit.cli", *argv], cwd=sandbox / "cwd", capture_output=True,
                          text=True, timeout=300)
    assert done.returncode in (1, 2), done
    assert "Traceback" not in done.stdout + done.stderr
    if argv[0] == "data":  # `data check` reports an unreadable file in its summary, on stdout
        assert "cannot read this file" in done.stdout and "no such file" in done.stdout, done
    else:
        _one_paragraph(done.stderr)
    assert tree(sandbox, skip=OS_LOCK) == before
