"""Per-run report, consolidated report, `ftkit lab` working copies, and the demo data generator."""
from __future__ import annotations

import json
import re

from ftkit.reports import build_engagement_report
from ftkit.runner import run_phases


def test_reports_are_self_contained_and_show_the_evidence(make_engagement):
    engagement = make_engagement()
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded
    html = (outcome.run_dir / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", html), "no external scripts (works offline)"
    assert "data:image/png;base64" in html  # figure embedded
    assert "Only runs made through `ftkit run` are evidence" in html
    assert "engagement.yaml" in html  # input hashes listed in the header
    index = build_engagement_report(engagement).read_text()
    assert "Executive summary" in index and "fine_tune" in index
    assert outcome.run_id in index and "intact" in index
    assert "not run yet" in index  # later phases are listed honestly
    assert not re.search(r"<script[^>]+src=", index)


def test_lab_copies_have_parameters_filled_in(make_engagement):
    from ftkit.lab import prepare_lab

    engagement = make_engagement()
    folder = prepare_lab(engagement)
    nb = json.loads((folder / "01_suitability.ipynb").read_text())
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    source = "".join(injected[0]["source"])
    assert str(engagement.path) in source and "interactive = True" in source
    # a consultant's edits are never overwritten
    (folder / "01_suitability.ipynb").write_text("{}")
    prepare_lab(engagement)
    assert (folder / "01_suitability.ipynb").read_text() == "{}"


def test_questionnaire_saves_answers_and_keeps_comments(make_engagement):
    import pytest
    from ftkit.config import load_config
    from ftkit.errors import ConfigError
    from ftkit.questionnaire import questionnaire, save_answers

    engagement = make_engagement()
    save_answers(engagement.config_path, {"needs_fresh_facts": True, "quality_examples": 250})
    config = load_config(engagement.config_path)
    assert config.suitability.needs_fresh_facts is True and config.suitability.quality_examples == 250
    assert "# Answers depend on new/changing facts" in engagement.config_path.read_text()
    with pytest.raises(ConfigError):
        save_answers(engagement.config_path, {"quality_examples": "many"})
    assert load_config(engagement.config_path).suitability.quality_examples == 250  # file untouched
    assert len(questionnaire(engagement.config_path).children) > 10


def test_questionnaire_shows_every_question_in_full(make_engagement):
    import dataclasses
    import html

    import ipywidgets as w

    from ftkit.config import SuitabilitySettings
    from ftkit.questionnaire import questionnaire

    engagement = make_engagement()
    box = questionnaire(engagement.config_path)
    labels, described = [], []
    stack = [box]
    while stack:
        widget = stack.pop()
        stack.extend(getattr(widget, "children", ()))
        if isinstance(widget, w.HTML):
            labels.append(html.unescape(widget.value))
        elif isinstance(widget, w.Button):
            assert widget.layout.width == "auto", "a fixed-width button cuts its text ('Save answers to …')"
        elif getattr(widget, "description", ""):
            described.append(widget.description)
    # ipywidgets cuts a description to a fixed width: no control carries its question there.
    assert described == []
    for fld in dataclasses.fields(SuitabilitySettings):
        assert any(fld.metadata["help"] in label and fld.name in label for label in labels), fld.name
    assert set(box.controls) == {f.name for f in dataclasses.fields(SuitabilitySettings)}
    box.controls["quality_examples"].value = 321
    save = next(c for c in box.children if isinstance(c, w.Button))
    save.click()
    from ftkit.config import load_config
    assert load_config(engagement.config_path).suitability.quality_examples == 321


def test_lab_command_is_offline_and_passes_allow_root_only_as_root(tmp_path, monkeypatch):
    import ftkit.lab as lab

    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    user = lab.lab_command(tmp_path)
    assert "--allow-root" not in user and f"--notebook-dir={tmp_path}" in user
    assert {"--LabApp.news_url=None", "--LabApp.extension_manager=readonly"} <= set(user)
    assert any(a.endswith("NeverCheckForUpdate") for a in user)
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    assert "--allow-root" in lab.lab_command(tmp_path)


def test_lab_really_starts_here_without_news_or_update_checks(tmp_path):
    # The real JupyterLab with ftkit's command line (as root on CI and in containers: it must start at all).
    import socket
    import subprocess
    import time
    import urllib.request

    from ftkit.lab import lab_command

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "lab.log"
    extra = ("--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             "--IdentityProvider.token=ftkit-test", "--debug")
    env = {**__import__("os").environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    with open(log, "w") as out:
        server = subprocess.Popen(lab_command(tmp_path, extra), stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        def get(path: str) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?token=ftkit-test", timeout=10) as response:
                return response.read().decode()

        deadline, page = time.monotonic() + 90, None
        while page is None:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                page = get("/lab")
            except OSError:
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S).group(1))
        assert config["news"] == {"disabled": True}
        assert config["extensionManager"]["can_install"] is False  # read-only: it never searches PyPI
        assert json.loads(get("/lab/api/update")) == {"notification": None}
        assert json.loads(get("/lab/api/news")) == {"news": []}
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert "Running as root is not recommended" not in text
    assert "Failed to get latest version" not in text and "feed.xml" not in text, text[-3000:]


def test_demo_data_file_is_the_generator_output(tmp_path):
    from ftkit.demo_data import write
    from ftkit.resources import sample_data_dir

    shipped = (sample_data_dir() / "support_tickets.jsonl").read_text()
    assert write(tmp_path / "t.jsonl").read_text() == shipped
    records = [json.loads(line) for line in shipped.splitlines()]
    assert len(records) >= 600
    answers = [r["messages"][-1]["content"] for r in records]
    assert sum(1 for a in answers if not a.strip()) == 1  # the deliberate empty answer


def test_run_report_moves_warnings_progress_and_reprs_to_the_run_log(tmp_path):
    import base64

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from ftkit.reports import RUN_LOG, render_run_report

    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    cells = [
        new_code_cell("x", outputs=[new_output("display_data", {"text/markdown": "## Findings", "text/plain": "md"}),
                                    new_output("stream", name="stderr", text="/usr/lib/x.py:3: FutureWarning: old\n")]),
        new_code_cell("y", outputs=[new_output("stream", name="stdout",
                                               text="\rgenerating:  50%|#####     | 6/12 [00:01<00:01, 5.0ex/s]"
                                                    "\rgenerating: 100%|##########| 12/12 [00:02<00:00, 6.0ex/s]\n"
                                                    "12 answers written to predictions.jsonl\n"),
                                    new_output("display_data", {"application/vnd.jupyter.widget-view+json":
                                                                {"model_id": "abc"},
                                                                "text/plain": "Writing model shards: 0%"})]),
        new_code_cell("z", outputs=[new_output("display_data", {"text/plain": "<Figure size 1110x360 with 1 Axes>"}),
                                    new_output("display_data", {"image/png": png, "text/plain": "<Figure>"},
                                               metadata={"image/png": {"alt": "loss <curve>"}}),
                                    new_output("execute_result", {"text/plain": "PosixPath('/tmp/x/results.json')"},
                                               execution_count=3),
                                    new_output("error", ename="RuntimeError", evalue="the run broke",
                                               traceback=["RuntimeError: the run broke"])]),
    ]
    notebook = tmp_path / "run" / "05_evaluation.ipynb"
    notebook.parent.mkdir()
    nbformat.write(new_notebook(cells=cells), str(notebook))
    out = render_run_report(notebook, notebook.parent / "report.html",
                            {"client": "acme", "client_name": "Acme", "phase": "evaluation", "phase_title": "Eval",
                             "run_id": "r1", "status": "failed",
                             "inputs": {"data/a.jsonl": "ab" * 32, "/opt/ftkit/other/prices.yaml": "cd" * 32}})
    page = out.read_text()
    kept = re.sub(r"<style.*?</style>", "", page, flags=re.S)
    assert "Findings" in kept and "12 answers written to predictions.jsonl" in kept
    assert f"data:image/png;base64,{png}" in kept
    assert 'alt="loss &lt;curve&gt;"' in kept  # the figure's name, from show_png's metadata
    assert "the run broke" in kept  # a failed run's error stays in the report
    # (nbconvert styles the error block as stderr too; only the error's own block may have that style)
    assert kept.count('data-mime-type="application/vnd.jupyter.stderr"') == 1
    for noise in ("FutureWarning", "generating:", "Writing model shards", "Figure size", "PosixPath(",
                  "/opt/ftkit/other"):
        assert noise not in kept, noise
    assert "outside the engagement: prices.yaml" in kept and "data/a.jsonl" in kept
    log = (notebook.parent / RUN_LOG).read_text()
    assert "--- cell 1 [stderr]\n/usr/lib/x.py:3: FutureWarning: old" in log
    assert "--- cell 2 [progress]" in log and "12/12" in log and "--- cell 2 [widget]\nWriting model shards" in log
    assert "--- cell 3 [repr]\n<Figure size 1110x360 with 1 Axes>\nPosixPath('/tmp/x/results.json')" in log
    assert "12 answers written" not in log and "Findings" not in log
