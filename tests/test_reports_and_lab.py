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
