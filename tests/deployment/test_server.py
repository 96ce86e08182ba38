"""The UAT endpoint over real HTTP on an ephemeral 127.0.0.1 port: good requests, bad ones, and the client."""
from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlparse

import pytest

from ftkit.deployment.chat_request import RequestError, parse_chat_request
from ftkit.deployment.server import MAX_BODY_BYTES, BackgroundServer

USER = [{"role": "user", "content": "My card was charged twice for one order."}]


@pytest.fixture(scope="module")
def server(tiny_chat_model, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "requests.jsonl"
    with BackgroundServer(tiny_chat_model, log_path=log) as srv:  # shuts down at the end of the module
        srv.log_path = log
        yield srv
    assert not srv.thread.is_alive(), "the server thread must stop by itself"


def call(server, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None):
    """One real HTTP request; returns (status, parsed JSON body)."""
    url = urlparse(server.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def chat(server, **body):
    return call(server, "POST", "/v1/chat/completions", {"model": "tiny-ft", "messages": USER, **body})


def test_binds_loopback_on_an_ephemeral_port(server):
    host, port = server.httpd.server_address[:2]
    assert host == "127.0.0.1" and port > 0


def test_models_lists_the_served_model(server):
    status, body = call(server, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in body["data"]] == ["tiny-ft"]
    assert call(server, "GET", "/v1/models/tiny-ft")[0] == 200
    assert call(server, "GET", "/v1/models/other")[0] == 404


def test_chat_completion_answers_in_openai_shape_and_is_logged(server):
    status, body = chat(server, max_tokens=8)
    assert status == 200, body
    choice = body["choices"][0]
    assert body["object"] == "chat.completion" and choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str)
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert 0 < usage["completion_tokens"] <= 8 and usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    logged = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    assert logged and logged[-1]["messages"] == USER and logged[-1]["output"] == choice["message"]["content"]


def test_greedy_answers_are_repeatable_and_match_max_tokens(server):
    first, second = chat(server, max_tokens=6)[1], chat(server, max_tokens=6)[1]
    assert first["choices"][0]["message"] == second["choices"][0]["message"]
    if first["choices"][0]["finish_reason"] == "length":
        assert first["usage"]["completion_tokens"] == 6


def test_uses_the_chat_template(server, tiny_chat_model):
    from ftkit.prompting import render

    _, body = chat(server, max_tokens=1)
    rendered = render(tiny_chat_model.tokenizer, USER)
    assert "<|im_start|>assistant" in rendered
    assert body["usage"]["prompt_tokens"] == len(tiny_chat_model.tokenizer(rendered, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("body, status, param", [
    ({"model": "tiny-ft"}, 400, "messages"),
    ({"model": "tiny-ft", "messages": []}, 400, "messages"),
    ({"model": "tiny-ft", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role"),
    ({"model": "tiny-ft", "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content"),
    ({"model": "tiny-ft", "messages": [{"role": "system", "content": "only a system prompt"}]}, 400, "messages"),
    ({"model": "gpt-5", "messages": USER}, 404, "model"),
    ({"messages": USER}, 400, "model"),
    ({"model": "tiny-ft", "messages": USER, "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "tiny-ft", "messages": USER, "max_tokens": "ten"}, 400, "max_tokens"),
    ({"model": "tiny-ft", "messages": USER, "temperature": 5}, 400, "temperature"),
    ({"model": "tiny-ft", "messages": USER, "stream": 1}, 400, "stream"),
    ({"model": "tiny-ft", "messages": USER, "n": 3}, 400, "n"),
])
def test_bad_requests_get_4xx_json_naming_the_parameter(server, body, status, param):
    got, payload = call(server, "POST", "/v1/chat/completions", body)
    assert got == status
    assert payload["error"]["param"] == param and payload["error"]["message"]
    assert payload["error"]["type"] == "invalid_request_error"


def test_malformed_json_and_non_object_bodies(server):
    status, payload = call(server, "POST", "/v1/chat/completions", raw=b'{"model": "tiny-ft", "messages": [')
    assert status == 400 and payload["error"]["code"] == "invalid_json"
    status, payload = call(server, "POST", "/v1/chat/completions", raw=b"[1, 2]")
    assert status == 400 and "JSON object" in payload["error"]["message"]


def test_oversize_body_gets_413(server):
    big = json.dumps({"model": "tiny-ft", "messages": [{"role": "user", "content": "x" * (MAX_BODY_BYTES + 10)}]})
    status, payload = call(server, "POST", "/v1/chat/completions", raw=big.encode())
    assert status == 413 and payload["error"]["code"] == "request_too_large"


def test_prompt_longer_than_the_context_is_refused(server):
    long = [{"role": "user", "content": "payment refund order " * 400}]
    status, payload = call(server, "POST", "/v1/chat/completions", {"model": "tiny-ft", "messages": long})
    assert status == 400 and payload["error"]["code"] == "context_length_exceeded"


def test_unknown_route_and_wrong_method(server):
    status, payload = call(server, "GET", "/v1/completions")
    assert status == 404 and "/v1/chat/completions" in payload["error"]["message"]
    status, payload = call(server, "GET", "/v1/chat/completions")
    assert status == 405 and "POST" in payload["error"]["message"]


def test_concurrent_requests_are_all_answered(server):
    results = []

    def worker():
        results.append(chat(server, max_tokens=4)[0])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [200] * 4


def test_works_as_a_backend_for_ftkit_openai_client(server):
    from ftkit.openai_backend import OpenAIChatClient

    client = OpenAIChatClient(server.base_url, "tiny-ft", api_key_env="", max_retries=0, timeout_s=30)
    reply = client.chat(USER, max_tokens=5)
    assert reply.completion_tokens <= 5 and reply.finish_reason in ("stop", "length")


def test_stop_strings_cut_the_answer(server):
    full = chat(server, max_tokens=12)[1]["choices"][0]["message"]["content"]
    assert len(full) >= 4, "the tiny model's greedy answer is too short to cut"
    status, body = chat(server, max_tokens=12, stop=[full[3:5]])
    assert status == 200 and body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == full[:full.find(full[3:5])].strip()
    with pytest.raises(RequestError) as info:
        parse_chat_request(json.dumps({"model": "m", "messages": USER, "stop": [1]}).encode(), ("m",))
    assert info.value.status == 400 and info.value.param == "stop"


def test_content_parts_are_accepted():
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}
    assert parse_chat_request(json.dumps(body).encode(), ("m",)).messages[0]["content"] == "ab"


def test_port_in_use_is_a_clear_error(server, tiny_chat_model):
    from ftkit.deployment.server import ChatServer
    from ftkit.errors import FtkitError

    port = server.httpd.server_address[1]
    with pytest.raises(FtkitError, match="in use"):
        ChatServer(tiny_chat_model, "127.0.0.1", port)
