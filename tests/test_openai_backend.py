"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 running the tiny model."""
from __future__ import annotations

import socket

import pytest
from chat_server import ChatServer

from ftkit.config import OpenAIBackendSettings, parse_config
from ftkit.errors import ConfigError, FtkitError
from ftkit.generation import generate_for_config, generate_openai, write_predictions
from ftkit.openai_backend import OpenAIChatClient
from ftkit.prompting import build_prompts, make_spec

KEY = "sk-test-1234567890abcdef"  # a fake key; the tests prove it never reaches files or messages


def records(n=3):
    return [{"id": f"r{i}", "messages": [{"role": "user", "content": f"ticket {i}: refund please"},
                                         {"role": "assistant", "content": '{"category": "billing"}'}]}
            for i in range(n)]


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    with ChatServer(tiny_model_dir, api_key=KEY) as srv:
        yield srv


def client(server, **kw):
    return OpenAIChatClient(server.base_url, "tiny-test", api_key_env="FTKIT_TEST_KEY", backoff_s=0.01, **kw)


def test_generates_predictions_over_http(server, monkeypatch, tmp_path):
    monkeypatch.setenv("FTKIT_TEST_KEY", KEY)
    prompts = build_prompts(records(), make_spec([], 0, "Classify."), None)
    preds = generate_openai(client(server), prompts, max_new_tokens=6, progress=False)
    assert [p.id for p in preds] == ["r0", "r1", "r2"]
    assert all(p.n_input_tokens > 0 and 1 <= p.n_output_tokens <= 6 and p.latency_s > 0 for p in preds)
    assert all(p.hit_max_new_tokens == (p.n_output_tokens == 6) for p in preds)  # finish_reason "length"
    sent = server.requests[-1]
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Classify."}
    assert sent["body"]["max_tokens"] == 6 and sent["authorization"] == f"Bearer {KEY}"
    path = write_predictions(tmp_path / "predictions.jsonl", preds)
    assert KEY not in path.read_text()


def test_generate_for_config_with_the_openai_backend(server, monkeypatch):
    monkeypatch.setenv("FTKIT_TEST_KEY", KEY)
    config = parse_config({"baseline": {"backend": "openai", "max_new_tokens": 4, "openai": {
        "base_url": server.base_url, "model": "tiny-test", "api_key_env": "FTKIT_TEST_KEY"}}})
    run = generate_for_config(config, records(2), make_spec([], 0), records(), progress=False)
    assert len(run.predictions) == 2 and run.model["kind"] == "openai" and run.max_new_tokens == 4
    assert KEY not in repr(run.model) and run.model["api_key_env"] == "FTKIT_TEST_KEY"


def test_wrong_key_names_the_variable_not_the_key(server, monkeypatch):
    monkeypatch.setenv("FTKIT_TEST_KEY", "sk-wrong-key-000")
    with pytest.raises(FtkitError, match="FTKIT_TEST_KEY") as info:
        client(server).chat([{"role": "user", "content": "hi"}], 4)
    assert "401" in str(info.value) and "sk-wrong-key-000" not in str(info.value)


def test_bounded_retries_on_503(tiny_model_dir, monkeypatch):
    with ChatServer(tiny_model_dir, fail_first=2) as flaky:
        reply = OpenAIChatClient(flaky.base_url, "tiny-test", api_key_env="", backoff_s=0.01).chat(
            [{"role": "user", "content": "hi"}], 3)
        assert reply.completion_tokens >= 1 and len(flaky.requests) == 3  # two 503s, then success
    with ChatServer(tiny_model_dir, fail_first=100) as down:
        with pytest.raises(FtkitError, match="failed 3 times"):
            OpenAIChatClient(down.base_url, "tiny-test", api_key_env="", max_retries=2, backoff_s=0.01).chat(
                [{"role": "user", "content": "hi"}], 3)
        assert len(down.requests) == 3


def test_unknown_model_and_wrong_path_are_explained(server, monkeypatch):
    monkeypatch.setenv("FTKIT_TEST_KEY", KEY)
    with pytest.raises(FtkitError, match="HTTP 400: unknown model 'gpt-x'"):
        OpenAIChatClient(server.base_url, "gpt-x", api_key_env="FTKIT_TEST_KEY").chat(
            [{"role": "user", "content": "hi"}], 3)
    with pytest.raises(FtkitError, match="ends in /v1"):
        OpenAIChatClient(server.base_url + "/wrong", "tiny-test", api_key_env="FTKIT_TEST_KEY").chat(
            [{"role": "user", "content": "hi"}], 3)


def test_nothing_listening_fails_after_bounded_retries():
    with socket.socket() as sock:  # find a free port, then close it so nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    bad = OpenAIChatClient(f"http://127.0.0.1:{port}/v1", "m", api_key_env="", max_retries=1, backoff_s=0.01)
    with pytest.raises(FtkitError, match="failed 2 times"):
        bad.chat([{"role": "user", "content": "hi"}], 3)


def test_settings_problems_are_reported_together():
    with pytest.raises(ConfigError) as info:
        OpenAIChatClient.from_settings(OpenAIBackendSettings(base_url="", model=""))
    assert len(info.value.problems) == 2
    with pytest.raises(ConfigError, match="http:// or https://"):
        OpenAIChatClient.from_settings(OpenAIBackendSettings(base_url="api.example.com", model="m"))
