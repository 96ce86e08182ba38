"""The deployment plan notebook through the real runner (papermill), then `ftkit monitor` and `ftkit serve`'s
model choice on its output.

Upstream runs are hand-made in the layout the data audit, training and evaluation phases write (splits,
``adapter/``, results.json), so this test does not depend on those phases; ``test_tiny_chain_deployment``
runs the real chain when those notebooks exist.
"""
from __future__ import annotations

import json

import pytest

from deploy_helpers import make_adapter, ticket_records
from ftkit.resources import notebooks_dir

RUN_ID = "20260101T000000Z-abc123"


def typed(phase: str, results: dict) -> dict:
    """headline, results and schema of the phase's typed results: ``results`` over empty values of every field."""
    from dataclasses import fields

    from ftkit.phase_results import result_type

    cls = result_type(phase)
    empty = {"dict": {}, "list": []}
    values = {f.name: empty.get(str(f.type), None if "None" in str(f.type) else "" if f.type == "str" else 0)
              for f in fields(cls)}
    obj = cls(**{**values, **results})
    return {"results": obj.to_results(), "schema": obj.schema()}


def fake_run(engagement, phase: str, results: dict, files: dict[str, str] | None = None):
    run_dir = engagement.runs_dir(phase) / RUN_ID
    run_dir.mkdir(parents=True)
    for name, text in (files or {}).items():
        (run_dir / name).write_text(text, encoding="utf-8")
    payload = {"phase": phase, "run_id": RUN_ID, "headline": {}, "results": {}, "findings": [], "blocks_downstream": "",
               **results, **typed(phase, results.get("results", {}))}
    (run_dir / "results.json").write_text(json.dumps(payload), encoding="utf-8")
    (run_dir / "status.json").write_text(json.dumps({"status": "succeeded"}), encoding="utf-8")
    engagement.set_latest(phase, RUN_ID)
    return run_dir


EVALUATION = {"headline": {"verdict": "go", "headline_metric": "label_accuracy", "delta": 0.3},
              "results": {"metrics": {"label_accuracy": {"fine_tuned": 0.9, "baseline": 0.6, "diff": 0.3,
                                                         "diff_ci": [0.2, 0.4], "significant": True, "n": 12}},
                          "fine_tuned_metrics": {"n": 12, "headline": {"name": "label_accuracy"}},
                          "verdict": {"verdict": "go", "action": "ship"}}}


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, tiny_model_dir):
    """An engagement with hand-made upstream runs and one real deployment_plan run."""
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement
    from ftkit.runner import run_phases

    folder = tmp_path_factory.mktemp("deploy-nb")
    records = ticket_records(160)
    data = folder / "tickets.jsonl"
    data.write_text("".join(json.dumps({"messages": r["messages"]}) + "\n" for r in records), encoding="utf-8")
    settings = {**DEMO_SETTINGS, "training.max_seq_length": 256, "deployment.equivalence_prompts": 2}
    engagement = create_engagement("acme", [data], folder / "engagements", base_model=str(tiny_model_dir),
                                   settings=settings)
    split = lambda rows: "".join(json.dumps(r) + "\n" for r in rows)
    fake_run(engagement, "data_audit", {"headline": {"verdict": "ready"}},
             {"train.jsonl": split(records[:140]), "validation.jsonl": split(records[140:148]),
              "test.jsonl": split(records[148:])})
    training = fake_run(engagement, "training", {"headline": {"method": "lora"}})
    make_adapter(tiny_model_dir, training / "adapter")
    fake_run(engagement, "baseline", {"headline": {"model": "tiny"}})
    fake_run(engagement, "evaluation", EVALUATION)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: tiny matmuls gain nothing from a second thread
        [outcome] = run_phases(engagement, ["deployment_plan"], {"check_max_new_tokens": 8}, progress=False)
    assert outcome.succeeded, f"{outcome.status}: {outcome.error} ({outcome.run_dir})"
    return engagement, outcome.run_dir


def test_results_headline_and_findings(deployed):
    _, run_dir = deployed
    results = json.loads((run_dir / "results.json").read_text())
    assert results["headline"]["serving"].endswith("bf16") and results["headline"]["monthly_cost_usd"] > 0
    codes = {f["code"] for f in results["findings"]}
    assert {"deployment.export_equivalent", "deployment.uat_endpoint", "deployment.sizing", "deployment.cost",
            "deployment.retraining", "deployment.handover"} <= codes
    assert results["results"]["export"]["passed"] is True
    assert [r["status"] for r in results["results"]["uat_smoke_test"]] == [200, 200, 400]
    assert results["tell_client"] and results["next_steps"]


def test_handover_bundle_is_complete_and_hashed(deployed):
    _, run_dir = deployed
    for rel in ("export/merged/model.safetensors", "export/merged/README.md", "export/adapter/adapter_config.json",
                "serving/vllm_merged.sh", "serving/vllm_lora.sh", "serving/Modelfile", "serving/tgi.sh",
                "serving/inference.py", "serving/chat_template.jinja", "monitoring/reference_stats.json",
                "monitoring/monitoring_plan.md", "handover.md", "figures/break_even.png"):
        assert (run_dir / rel).is_file(), rel
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert "export/merged/model.safetensors" in manifest["outputs"]
    assert any(k.endswith("adapter/adapter_model.safetensors") for k in manifest["inputs"])
    handover = (run_dir / "handover.md").read_text()
    assert "export/merged/model.safetensors" in handover and "ftkit serve acme" in handover


def test_model_card_carries_the_evaluation_metrics(deployed):
    from huggingface_hub import ModelCard

    _, run_dir = deployed
    card = ModelCard.load(run_dir / "export" / "merged" / "README.md")
    [result] = card.data.eval_results
    assert (result.metric_type, result.metric_value) == ("label_accuracy", 0.9)
    assert "Test model" in card.text  # the tiny random model is flagged as meaningless


def test_monitor_command_on_the_uat_log_and_a_shifted_log(deployed, tmp_path, capsys):
    from ftkit.cli import main

    engagement, _ = deployed
    records = ticket_records(160)[:140]
    same = tmp_path / "same.jsonl"
    same.write_text("".join(json.dumps({"messages": r["messages"][:-1], "output": r["messages"][-1]["content"]}) + "\n"
                            for r in records))
    assert main(["monitor", "acme", "--log", str(same), "--root", str(engagement.root)]) == 0
    shifted = tmp_path / "shifted.jsonl"
    shifted.write_text("".join(json.dumps({"input": r["messages"][1]["content"] * 5, "output": '{"category": "billing"}'})
                               + "\n" for r in records))
    assert main(["monitor", "acme", "--log", str(shifted), "--root", str(engagement.root)]) == 1
    out = capsys.readouterr()
    assert "ALERT" in out.err and "input tokens" in out.err
    assert len(list((engagement.path / "monitoring").glob("drift-*.json"))) >= 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert main(["monitor", "acme", "--log", str(bad), "--root", str(engagement.root)]) == 1
    assert "line 1: not valid JSON" in capsys.readouterr().err


def test_serve_prefers_the_checked_merged_export(deployed):
    from ftkit.deployment.artefacts import served_model

    engagement, run_dir = deployed
    served = served_model(engagement)
    assert served.kind == "full" and served.weights_dir == run_dir / "export" / "merged"


def start_serve(engagement, *extra: str):
    """`ftkit serve acme --port 0` as a real process; returns (process, base URL from its first line)."""
    import os
    import re
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "ftkit.cli", "serve", "acme", "--port", "0", "--root",
                             str(engagement.root), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    line = proc.stdout.readline()  # "Serving ... at http://127.0.0.1:PORT/v1 (Ctrl-C to stop)"
    match = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"ftkit serve did not start: {line}{proc.communicate(timeout=30)[1][-2000:]}")
    return proc, match.group(1)


def post(url: str, body: dict, token: str = "", timeout: float = 60):
    import urllib.request

    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    return urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers),
                                  timeout=timeout)


def issue_token(engagement, name: str, capsys) -> str:
    import re

    from ftkit.cli import main

    assert main(["serve", "acme", "--root", str(engagement.root), "--issue-token", name]) == 0
    return re.search(r"(ftk_[A-Za-z0-9_-]+)", capsys.readouterr().out).group(1)


def test_ftkit_serve_command_answers_and_stops_on_ctrl_c(deployed, capsys):
    """`ftkit serve` as a real process on a free port with an issued token: one real request, then Ctrl-C
    (SIGINT) ends it with 0; the log line names the tester."""
    import signal
    import urllib.error

    engagement, _ = deployed
    token = issue_token(engagement, "ctrl-c", capsys)
    proc, url = start_serve(engagement)
    try:
        body = {"model": "acme-ft", "messages": [{"role": "user", "content": "parcel late"}], "max_tokens": 3}
        with post(url + "/chat/completions", body, token) as response:
            assert json.loads(response.read())["model"] == "acme-ft"
        with pytest.raises(urllib.error.HTTPError) as refused:
            post(url + "/chat/completions", body)
        assert refused.value.code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0
    log = engagement.path / "serving" / "uat_requests.jsonl"
    last = json.loads(log.read_text().splitlines()[-1])
    assert last["messages"][0]["content"] == "parcel late" and last["tester"] == "ctrl-c"


def test_serve_refuses_without_tokens_and_no_auth_off_loopback(deployed, capsys, tmp_path):
    import shutil

    from ftkit.cli import main

    engagement, _ = deployed
    copy = tmp_path / "engagements"
    shutil.copytree(engagement.path, copy / "acme", ignore=shutil.ignore_patterns("uat", "export", "adapter"))
    assert main(["serve", "acme", "--root", str(copy), "--port", "0"]) == 2
    assert "--issue-token NAME" in capsys.readouterr().err
    assert main(["serve", "acme", "--root", str(copy), "--host", "0.0.0.0", "--no-auth"]) == 2
    assert "only on 127.0.0.1" in capsys.readouterr().err
    assert main(["serve", "acme", "--root", str(copy), "--issue-token", "a b"]) == 0
    issued = capsys.readouterr().out
    assert "ftk_" in issued and "#token=ftk_" in issued
    assert main(["serve", "acme", "--root", str(copy), "--list-tokens"]) == 0
    listed = capsys.readouterr().out
    assert "a b" in listed and "active" in listed and "ftk_" not in listed
    assert main(["serve", "acme", "--root", str(copy), "--revoke-token", "a b"]) == 0
    assert main(["serve", "acme", "--root", str(copy), "--revoke-token", "a b"]) == 2


def test_kill_9_mid_stream_loses_no_earlier_log_line(deployed, capsys):
    """Requests and feedback through a real `ftkit serve`, then kill -9 while a stream is running: every line
    written before is intact and parseable, and `ftkit monitor` and `ftkit data from-uat` still read the logs."""
    import signal

    from ftkit.cli import main
    from ftkit.deployment.uat_log import FEEDBACK_FILE, read_lines

    engagement, _ = deployed
    token = issue_token(engagement, "kill-test", capsys)
    request_log, feedback_log = engagement.path / "serving" / "uat_requests.jsonl", engagement.path / FEEDBACK_FILE
    proc, url = start_serve(engagement)
    ids = []
    try:
        for i, rating in enumerate(("up", "down", "up")):
            body = {"model": "acme-ft", "messages": [{"role": "user", "content": f"parcel {i} late"}], "max_tokens": 4}
            with post(url + "/chat/completions", body, token) as response:
                ids.append(json.loads(response.read())["id"])
            with post(url.removesuffix("/v1") + "/uat/feedback",
                      {"request_id": ids[-1], "rating": rating, "correction": "Shipping." if rating == "down" else ""},
                      token):
                pass
        before = (request_log.read_bytes(), feedback_log.read_bytes())
        stream = post(url + "/chat/completions", {"model": "acme-ft", "stream": True, "max_tokens": 200,
                                                  "messages": [{"role": "user", "content": "long story"}]}, token)
        assert stream.readline().startswith(b"data: ")  # the stream is running
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert request_log.read_bytes().startswith(before[0]) and feedback_log.read_bytes().startswith(before[1])
    requests, _ = read_lines(request_log)
    feedback, _ = read_lines(feedback_log)
    assert set(ids) <= {e["request_id"] for e in requests if e.get("tester") == "kill-test"}
    assert [e["rating"] for e in feedback if e["request_id"] in ids] == ["up", "down", "up"]
    assert main(["monitor", "acme", "--root", str(engagement.root)]) == 0
    assert "rated answers approved" in capsys.readouterr().out


@pytest.mark.skipif(not all((notebooks_dir() / n).is_file() for n in ("04_training.ipynb", "05_evaluation.ipynb")),
                    reason="the training and evaluation notebooks are not in this checkout yet")
def test_tiny_chain_deployment(tiny_chain):
    engagement = tiny_chain.through("deployment_plan")
    run_dir = engagement.latest_run_dir("deployment_plan")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["headline"]["monthly_cost_usd"] > 0
    assert results["results"]["export"]["passed"] is True
