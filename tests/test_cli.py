"""The `ftkit` command as a user runs it: real subprocesses, exit codes, one-paragraph errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def ftkit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ftkit.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_is_fast_and_imports_no_heavy_library():
    code = ("import sys, ftkit.cli, ftkit.suitability, ftkit.config, ftkit.runner, ftkit.reports; "
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'matplotlib', 'papermill') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert ftkit("--help").returncode == 0


def _no_traceback(result):
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


@pytest.mark.parametrize("name", ["../x", "a/b", "bad name"])
def test_bad_client_name_is_a_usage_error(tmp_path, name):
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n")
    result = ftkit("new", name, "--data", str(data), "--root", str(tmp_path / "eng"))
    assert result.returncode == 2
    assert "not a safe folder name" in result.stderr
    _no_traceback(result)


def test_new_run_status_verify_report_round_trip(tmp_path):
    from ftkit.resources import sample_data_dir

    root = str(tmp_path / "eng")
    created = ftkit("new", "acme", "--data", str(sample_data_dir() / "support_tickets.jsonl"), "--task",
                    "structured_output", "--root", root)
    assert created.returncode == 0, created.stderr
    run = ftkit("run", "acme", "--phase", "suitability", "--root", root)
    assert run.returncode == 0, run.stderr
    assert "01_suitability: succeeded" in run.stdout
    status = ftkit("status", "acme", "--root", root)
    assert "01_suitability" in status.stdout and "succeeded" in status.stdout and "recommendation=" in status.stdout
    assert ftkit("verify", "acme", "--root", root).returncode == 0
    report = ftkit("report", "acme", "--root", root)
    assert report.returncode == 0 and (tmp_path / "eng" / "acme" / "report" / "index.html").is_file()
    # edit a recorded file: verify exits 1 naming it
    results = next((tmp_path / "eng" / "acme" / "phases" / "01_suitability" / "runs").glob("*/results.json"))
    results.write_text(results.read_text().replace("fine_tune", "rag"))
    verify = ftkit("verify", "acme", "--root", root)
    assert verify.returncode == 1 and "results.json: run output has changed" in verify.stderr
    _no_traceback(verify)


@pytest.mark.parametrize("args,code,message", [
    (["run", "acme", "--phase", "nonsense"], 2, "Unknown phase 'nonsense'. Valid phases"),
    (["run", "acme", "--phase", "suitability", "-p", "shots=3"], 2, "has no parameter 'shots'"),
    (["run", "acme", "--phase", "suitability", "-p", "interactive=perhaps"], 2, "must be true or false"),
    (["run", "acme", "--phase", "suitability", "-p", "novalue"], 2, "-p expects KEY=VALUE"),
    (["run", "acme", "--phase", "suitability", "-p", "hf_token=abc"], 2, "looks like a secret"),
    (["run", "nobody"], 1, "No engagement 'nobody'"),
])
def test_usage_errors(tmp_path, args, code, message):
    from ftkit.resources import sample_data_dir
    root = str(tmp_path / "eng")
    assert ftkit("new", "acme", "--data", str(sample_data_dir() / "support_tickets.jsonl"), "--root", root).returncode == 0
    result = ftkit(*args, "--root", root)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    _no_traceback(result)


def test_malformed_engagement_yaml_is_one_paragraph(tmp_path):
    from ftkit.resources import sample_data_dir
    root = tmp_path / "eng"
    assert ftkit("new", "acme", "--data", str(sample_data_dir() / "support_tickets.jsonl"), "--root", str(root)).returncode == 0
    (root / "acme" / "engagement.yaml").write_text("task:\n  type: [broken\n")
    result = ftkit("run", "acme", "--root", str(root))
    assert result.returncode == 1
    assert "YAML syntax error" in result.stderr and "line" in result.stderr
    _no_traceback(result)


def test_unknown_command_is_usage_error():
    assert ftkit("fly").returncode == 2
    assert ftkit().returncode == 2


def test_missing_data_file(tmp_path):
    result = ftkit("new", "acme", "--data", str(tmp_path / "missing.jsonl"), "--root", str(tmp_path))
    assert result.returncode == 1 and "does not exist" in result.stderr
    _no_traceback(result)


def test_demo_suitability_leaves_the_evidence(tmp_path):
    result = ftkit("demo", "--root", str(tmp_path / "eng"), "--phase", "suitability")
    assert result.returncode == 0, result.stderr
    demo = tmp_path / "eng" / "demo"
    [run_dir] = list((demo / "phases" / "01_suitability" / "runs").iterdir())
    for name in ("report.html", "results.json", "manifest.json", "status.json"):
        assert (run_dir / name).is_file()
    assert (demo / "report" / "index.html").is_file()
    assert json.loads((run_dir / "results.json").read_text())["headline"]["recommendation"] == "fine_tune"
    assert ftkit("verify", "demo", "--root", str(tmp_path / "eng")).returncode == 0
    again = ftkit("demo", "--root", str(tmp_path / "eng"), "--phase", "suitability")  # reuses, adds a run
    assert again.returncode == 0 and len(list((demo / "phases" / "01_suitability" / "runs").iterdir())) == 2


def test_failed_run_names_the_executed_notebook_it_kept(make_engagement):
    from engagement_helpers import fork_notebook

    engagement = make_engagement(n=30)
    fork_notebook(engagement, "01_suitability", ["raise RuntimeError('the client data is not what we expected')"])
    result = ftkit("run", engagement.slug, "--phase", "suitability", "--root", str(engagement.path.parent))
    assert result.returncode == 1
    _no_traceback(result)
    [run_dir] = [p for p in (engagement.path / "phases" / "01_suitability" / "runs").iterdir()]
    kept = run_dir / "01_suitability.ipynb"
    assert kept.is_file()
    assert f"the partial notebook is kept as evidence: {kept}" in result.stderr
    assert "RuntimeError: the client data is not what we expected" in result.stderr
