"""UAT on the real server over real HTTP: tokens, streaming (with the official openai client), feedback, the
queue bound, and 16 clients at once. The tiny random model answers."""
from __future__ import annotations

import http.client
import json
import threading
from urllib.parse import urlparse

import pytest

from ftkit.deployment.server import BackgroundServer, ChatServer
from ftkit.deployment.uat_log import read_lines
from ftkit.deployment.uat_tokens import TokenStore, hash_token
from ftkit.errors import FtkitError, UsageError

USER = [{"role": "user", "content": "My card was charged twice for one order."}]


@pytest.fixture(scope="module")
def uat(tiny_chat_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("uat")
    store = TokenStore(folder / "uat" / "tokens.json")
    tokens = {name: store.issue(name) for name in ("dana", "lee", "sam")}
    with BackgroundServer(tiny_chat_model, log_path=folder / "requests.jsonl", tokens=store,
                          feedback_path=folder / "uat" / "feedback.jsonl",
                          identity={"training_run": "20260101T000000Z-abc"}, system_prompt="Triage.") as srv:
        srv.folder, srv.store, srv.tokens = folder, store, tokens
        yield srv


def call(server, method, path, body=None, token=None, raw=None, headers=None):
    url = urlparse(server.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **auth, **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
        try:
            parsed = json.loads(payload or b"null")
        except ValueError:
            parsed = payload.decode()
        return response.status, parsed, dict(response.getheaders())
    finally:
        conn.close()


def chat(server, token, **body):
    return call(server, "POST", "/v1/chat/completions", {"model": "tiny-ft", "messages": USER, "max_tokens": 6, **body},
                token)


def openai_client(server, token):
    from openai import OpenAI

    return OpenAI(base_url=server.base_url, api_key=token, max_retries=0, timeout=60)


# -- tokens -----------------------------------------------------------------------------------------------

def test_store_keeps_only_hashes_with_names_and_times(uat):
    text = (uat.folder / "uat" / "tokens.json").read_text()
    for name, token in uat.tokens.items():
        assert token not in text and hash_token(token) in text and f'"{name}"' in text
    rows = uat.store.table()
    assert {r["tester"] for r in rows} == {"dana", "lee", "sam"} and all(r["issued_utc"] for r in rows)


@pytest.mark.parametrize("headers, code", [({}, "missing_api_key"), ({"Authorization": "Bearer ftk_nope"}, "invalid_api_key"),
                                           ({"Authorization": "Basic abc"}, "missing_api_key")])
def test_missing_or_invalid_token_is_401_in_openai_shape(uat, headers, code):
    for method, path in (("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("GET", "/uat/info"),
                         ("POST", "/uat/feedback")):
        status, body, got = call(uat, method, path, {"model": "tiny-ft", "messages": USER}, headers=headers)
        assert status == 401, (method, path)
        assert body["error"]["code"] == code and body["error"]["type"] == "invalid_request_error"
        assert got["WWW-Authenticate"].startswith("Bearer")


def test_health_and_the_page_shell_need_no_token(uat):
    assert call(uat, "GET", "/health")[0] == 200
    status, page, headers = call(uat, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and "<script>" in page
    assert "tiny-ft" not in page and "Triage." not in page  # no engagement data in the open shell
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_info_names_the_tester_model_and_identity(uat):
    status, info, _ = call(uat, "GET", "/uat/info", token=uat.tokens["lee"])
    assert status == 200 and info["tester"] == "lee" and info["model"] == "tiny-ft"
    assert info["training_run"] == "20260101T000000Z-abc" and info["system_prompt"] == "Triage."


def test_revoked_token_is_refused_by_the_running_server(uat):
    token = uat.store.issue("temp")
    assert chat(uat, token)[0] == 200
    assert uat.store.revoke("temp") == 1
    status, body, _ = chat(uat, token)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    with pytest.raises(UsageError, match="No active token"):
        uat.store.revoke("temp")


def test_issue_refuses_bad_names_and_a_second_active_token(uat):
    with pytest.raises(UsageError, match="already has an active token"):
        uat.store.issue("dana")
    for bad in ("", "../x", "a" * 80, "bob\nsmith"):
        with pytest.raises(UsageError, match="not allowed"):
            uat.store.issue(bad)


def test_log_lines_name_the_tester_never_the_token(uat):
    status, body, _ = chat(uat, uat.tokens["sam"])
    assert status == 200
    events, _ = read_lines(uat.folder / "requests.jsonl")
    line = next(e for e in events if e["request_id"] == body["id"])
    assert line["tester"] == "sam" and line["event"] == "request"
    text = (uat.folder / "requests.jsonl").read_text()
    assert not any(t in text for t in uat.tokens.values())


def test_non_loopback_without_tokens_is_refused(tiny_chat_model):
    with pytest.raises(FtkitError, match="without access tokens"):
        ChatServer(tiny_chat_model, "0.0.0.0", 0)


# -- streaming ---------------------------------------------------------------------------------------------

def test_openai_client_streams_the_same_answer_as_without_streaming(uat):
    client = openai_client(uat, uat.tokens["dana"])
    plain = client.chat.completions.create(model="tiny-ft", messages=USER, max_tokens=12)
    chunks = list(client.chat.completions.create(model="tiny-ft", messages=USER, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks) and len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and (c.choices[0].delta.content or "")) >= 2, "not streamed in pieces"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [plain.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_raw_stream_is_server_sent_events_ending_with_done(uat):
    status, text, headers = chat(uat, uat.tokens["dana"], stream=True)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    first = json.loads(events[0][6:])
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}


def test_stream_stop_strings_cut_like_the_plain_answer(uat):
    client = openai_client(uat, uat.tokens["dana"])
    full = client.chat.completions.create(model="tiny-ft", messages=USER, max_tokens=12).choices[0].message.content
    stop = full[3:5]
    plain = client.chat.completions.create(model="tiny-ft", messages=USER, max_tokens=12, stop=[stop])
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny-ft", messages=USER, max_tokens=12, stop=[stop], stream=True) if c.choices)
    assert streamed == plain.choices[0].message.content and stop not in streamed


def test_too_long_prompt_in_a_stream_is_still_a_json_400(uat):
    long = [{"role": "user", "content": "payment refund order " * 400}]
    status, body, _ = call(uat, "POST", "/v1/chat/completions", {"model": "tiny-ft", "messages": long, "stream": True},
                           uat.tokens["dana"])
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"


@pytest.mark.parametrize("extra, param", [({"stream": "yes"}, "stream"), ({"stream_options": {"include_usage": True}},
                                                                         "stream_options")])
def test_bad_stream_parameters(uat, extra, param):
    status, body, _ = chat(uat, uat.tokens["dana"], **extra)
    assert status == 400 and body["error"]["param"] == param


def test_max_tokens_is_capped_by_the_served_context(uat, tiny_chat_model):
    status, body, _ = chat(uat, uat.tokens["dana"], max_tokens=4096, temperature=1.0, seed=3)
    assert status == 200
    usage = body["usage"]
    assert usage["prompt_tokens"] + usage["completion_tokens"] <= tiny_chat_model.context_length


# -- feedback ----------------------------------------------------------------------------------------------

def test_feedback_is_logged_with_the_exchange_it_rates(uat):
    _, body, _ = chat(uat, uat.tokens["lee"])
    status, saved, _ = call(uat, "POST", "/uat/feedback", {"request_id": body["id"], "rating": "down",
                                                          "correction": "Refund the duplicate charge.",
                                                          "comment": "wrong queue"}, uat.tokens["lee"])
    assert status == 200 and saved["request_id"] == body["id"]
    events, _ = read_lines(uat.folder / "uat" / "feedback.jsonl")
    line = next(e for e in events if e["feedback_id"] == saved["feedback_id"])
    assert (line["tester"], line["rating"], line["correction"], line["comment"]) == \
        ("lee", "down", "Refund the duplicate charge.", "wrong queue")
    assert line["messages"] == USER and line["output"] == body["choices"][0]["message"]["content"]


@pytest.mark.parametrize("body, status, param", [
    ({"request_id": "chatcmpl-doesnotexist", "rating": "up"}, 404, "request_id"),
    ({"request_id": "nope", "rating": "up"}, 400, "request_id"),
    ({"rating": "up"}, 400, "request_id"),
    ({"request_id": "chatcmpl-x", "rating": "meh"}, 400, "rating"),
    ({"request_id": "chatcmpl-x", "rating": "up", "comment": 5}, 400, "comment"),
    ({"request_id": "chatcmpl-x", "rating": "up", "correction": "x" * 20_001}, 400, "correction"),
])
def test_bad_feedback_is_a_4xx_naming_the_field(uat, body, status, param):
    got, payload, _ = call(uat, "POST", "/uat/feedback", body, uat.tokens["lee"])
    assert got == status and payload["error"]["param"] == param


def test_a_tester_cannot_rate_another_testers_answer(uat):
    _, body, _ = chat(uat, uat.tokens["lee"])
    status, payload, _ = call(uat, "POST", "/uat/feedback", {"request_id": body["id"], "rating": "up"},
                              uat.tokens["sam"])
    assert status == 403 and payload["error"]["code"] == "forbidden"


def test_feedback_finds_an_exchange_from_the_log_after_a_restart(uat, tiny_chat_model):
    _, body, _ = chat(uat, uat.tokens["sam"])
    with BackgroundServer(tiny_chat_model, log_path=uat.folder / "requests.jsonl", tokens=uat.store,
                          feedback_path=uat.folder / "uat" / "feedback.jsonl") as fresh:
        status, _, _ = call(fresh, "POST", "/uat/feedback", {"request_id": body["id"], "rating": "up"},
                            uat.tokens["sam"])
    assert status == 200


# -- load --------------------------------------------------------------------------------------------------

def test_sixteen_clients_every_request_answered_or_429_and_logged_once(tiny_chat_model, tmp_path):
    store = TokenStore(tmp_path / "tokens.json")
    tokens = [store.issue(f"t{i}") for i in range(16)]
    log = tmp_path / "requests.jsonl"
    results, lock = [], threading.Lock()
    with BackgroundServer(tiny_chat_model, log_path=log, tokens=store, feedback_path=tmp_path / "fb.jsonl",
                          max_pending=3) as srv:
        def client(i):
            for j in range(3):
                status, body, headers = chat(srv, tokens[i], max_tokens=24, stream=(i + j) % 2 == 0)
                with lock:
                    results.append((i, status, body, headers))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    assert len(results) == 48 and {s for _, s, _, _ in results} <= {200, 429}
    busy = [(b, h) for _, s, b, h in results if s == 429]
    assert busy, "16 clients against a bound of 3 must see some 429"
    assert all(int(h["Retry-After"]) >= 1 and b["error"]["code"] == "rate_limit_exceeded" for b, h in busy)
    answered = [(i, b) for i, s, b, _ in results if s == 200]
    ids = [b["id"] if isinstance(b, dict) else json.loads(b.split("\n\n")[0][6:])["id"] for _, b in answered]
    events, notes = read_lines(log)  # raises on any line that is not JSON
    assert not notes and sorted(e["request_id"] for e in events) == sorted(ids)  # each exactly once
    by_id = {e["request_id"]: e["tester"] for e in events}
    assert all(by_id[rid] == f"t{i}" for (i, _), rid in zip(answered, ids))


def test_a_closed_stream_stops_generation_and_is_logged_as_cancelled(uat):
    """The tester closes the tab mid-answer: generation ends within a few tokens (the model is free for the next
    request) and the log keeps what was generated, marked cancelled."""
    import socket
    import time

    for seed in range(10):  # a seed whose whole answer runs to max_tokens: only a cancel can end it early
        settings = {"model": "tiny-ft", "messages": USER, "max_tokens": 250, "temperature": 1.5, "seed": seed}
        _, whole, _ = call(uat, "POST", "/v1/chat/completions", settings, uat.tokens["dana"])
        if whole["choices"][0]["finish_reason"] == "length":
            break
    else:
        pytest.skip("the tiny model stopped early for every seed tried")
    url = urlparse(uat.base_url)
    body = json.dumps({**settings, "stream": True}).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=60)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + uat.tokens["dana"].encode() + b"\r\nContent-Length: " +
                 str(len(body)).encode() + b"\r\n\r\n" + body)
    assert b"200" in sock.recv(4096).split(b"\r\n", 1)[0]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    sock.close()
    deadline = time.time() + 60
    while time.time() < deadline:
        events, _ = read_lines(uat.folder / "requests.jsonl")
        cancelled = [e for e in events if e["finish_reason"] == "cancelled"]
        if cancelled:
            break
        time.sleep(0.2)
    assert cancelled and cancelled[-1]["completion_tokens"] < 250 and cancelled[-1]["tester"] == "dana"
    assert chat(uat, uat.tokens["dana"])[0] == 200  # the model lock was released
