"""A real OpenAI-compatible chat completions server for tests: a real (tiny) model behind real HTTP.

Serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1 with an ephemeral port, in a
daemon thread. Options exercise the client's error paths: ``api_key`` (401 without the right Bearer
token) and ``fail_first`` (answer the first N requests with 503, to test bounded retries).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class ThreadedServer:
    """An HTTP server (127.0.0.1, ephemeral port) served from a daemon thread while used as a context manager;
    ``base_url`` is its ``/v1`` root. Shared by the test servers (also tests/augment/conftest.py's teacher)."""

    httpd: HTTPServer
    thread: threading.Thread

    def serve(self, httpd: HTTPServer) -> None:
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class ChatServer(ThreadedServer):
    def __init__(self, model_dir, model_name: str = "tiny-test", api_key: str | None = None, fail_first: int = 0):
        from ftkit.models import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(str(model_dir))
        self.model = load_model(str(model_dir), device="cpu")
        self.model_name, self.api_key, self.fail_first = model_name, api_key, fail_first
        self.requests: list[dict] = []  # bodies received, for assertions
        self.lock = threading.Lock()
        httpd = HTTPServer(("127.0.0.1", 0), _handler(self))
        httpd.timeout = 5  # seconds a blocked socket read may take before the handler gives up
        self.serve(httpd)

    def complete(self, body: dict) -> dict:
        from ftkit.generation import generate_local
        from ftkit.prompting import PromptItem, render

        messages = body["messages"]
        item = PromptItem("req", messages, render(self.tokenizer, messages), "")
        with self.lock:  # one generation at a time: the model is not thread-safe
            [pred] = generate_local(self.model, self.tokenizer, [item], int(body.get("max_tokens") or 16),
                                    batch_size=1, progress=False)
        return {"id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                "model": self.model_name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": pred.output},
                             "finish_reason": "length" if pred.hit_max_new_tokens else "stop"}],
                "usage": {"prompt_tokens": pred.n_input_tokens, "completion_tokens": pred.n_output_tokens,
                          "total_tokens": pred.n_input_tokens + pred.n_output_tokens}}


def _handler(server: ChatServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def _send(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                return self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})
            self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            server.requests.append({"body": body, "authorization": self.headers.get("Authorization")})
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._send(404, {"error": {"message": f"no route {self.path}"}})
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                return self._send(401, {"error": {"message": "invalid api key"}})
            if server.fail_first > 0:
                server.fail_first -= 1
                return self._send(503, {"error": {"message": "warming up"}})
            if body.get("model") != server.model_name:
                return self._send(400, {"error": {"message": f"unknown model {body.get('model')!r}"}})
            self._send(200, server.complete(body))

    return Handler
