"""Fixtures for `ftkit augment`: real HTTP teachers and an engagement with a real data audit run.

- ``fixed_teacher``: a small OpenAI-compatible server (127.0.0.1, ephemeral port, a daemon thread) that answers
  scripted replies in order, to test each filter and each bad answer deterministically.
- ``served_tiny_teacher``: the ONE place tests host the tiny model with ftkit's own server (`ftkit serve`'s
  library-level ``BackgroundServer`` + ``LocalChatModel``) as a teacher; adapt it here if the server's access
  rules change (e.g. bearer tokens per tester).
- ``audited``: a copy of the session's tiny engagement (the shipped demo tickets) after its data audit.
"""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chat_server import ThreadedServer  # tests/ is on sys.path (its conftest.py, rootdir import mode)


class FixedTeacher(ThreadedServer):
    """Replies are dicts: {"content": text} (a 200 chat completion), or {"status": 429, "headers": {...}}; the
    last reply repeats once the script is used up. ``delay_s`` waits before each answer (kill tests)."""

    def __init__(self, replies: list[dict], model: str = "fixed-teacher", api_key: str | None = None,
                 delay_s: float = 0.0):
        self.replies, self.model, self.api_key, self.delay_s = list(replies), model, api_key, delay_s
        self.requests: list[dict] = []
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        httpd.daemon_threads = True
        self.serve(httpd)

    def next_reply(self) -> dict:
        index = len(self.requests) - 1
        return self.replies[min(index, len(self.replies) - 1)]


def _handler(server: FixedTeacher):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, payload: dict | str, headers: dict | None = None) -> None:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            server.requests.append({"body": body, "authorization": self.headers.get("Authorization"),
                                    "time": time.monotonic()})
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                return self._send(401, {"error": {"message": "invalid api key"}})
            reply = server.next_reply()
            if server.delay_s:
                time.sleep(server.delay_s)
            if "status" in reply:
                return self._send(reply["status"], {"error": {"message": "scripted"}}, reply.get("headers"))
            if "raw" in reply:
                return self._send(200, reply["raw"])
            self._send(200, {"id": "x", "object": "chat.completion", "model": server.model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": reply["content"]},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150}})

    return Handler


@pytest.fixture
def fixed_teacher():
    """fixed_teacher(replies, **options) -> a started FixedTeacher (stopped after the test)."""
    started = []

    def start(replies, **options) -> FixedTeacher:
        server = FixedTeacher(replies, **options).__enter__()
        started.append(server)
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
def served_tiny_teacher(tiny_model_dir):
    """The tiny random model behind ftkit's OpenAI-compatible server (what `ftkit serve` runs): yields the server."""
    from ftkit.deployment.server import BackgroundServer, LocalChatModel
    from ftkit.models import load_model, load_tokenizer

    chat_model = LocalChatModel(load_model(str(tiny_model_dir), device="cpu"), load_tokenizer(str(tiny_model_dir)),
                                "tiny-teacher")
    with BackgroundServer(chat_model) as server:
        yield server


@pytest.fixture
def audited(tiny_chain, tmp_path):
    """A private copy of the tiny demo engagement after its data audit (the audit runs once per session)."""
    tiny_chain.through("data_audit")
    return tiny_chain.copy(tmp_path)
