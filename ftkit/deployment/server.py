"""An OpenAI-compatible endpoint for user-acceptance testing: ``POST /v1/chat/completions``, ``GET /v1/models``.

Standard library HTTP (``ThreadingHTTPServer``): a UAT endpoint for a handful of testers, and a backend for
ftkit's own baseline/evaluation runs through ``ftkit.openai_backend``; production serving uses the vLLM/TGI
configs. Requests are validated by ``ftkit.deployment.chat_request`` (pure functions, so every rule is
tested), generation runs one request at a time under a lock (the model is not thread-safe; CPU has no
batching to gain), and every problem a client can cause is a 4xx JSON error in OpenAI's shape:
``{"error": {"message", "type", "param", "code"}}``. Binds 127.0.0.1 unless told otherwise. Each answered
request can be appended to a JSONL log in the format ``ftkit monitor`` reads.
"""
from __future__ import annotations

import datetime as _dt
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from ftkit.deployment.chat_request import ChatRequest, RequestError, parse_chat_request
from ftkit.errors import FtkitError

MAX_BODY_BYTES = 1_000_000  # 1 MB of JSON is far more than any UAT prompt; larger bodies get 413
DRAIN_LIMIT_BYTES = 16_000_000  # read (and drop) an oversize body up to this, so the client sees the 413
SOCKET_TIMEOUT_S = 30  # a client that stops sending mid-request frees its thread after this


@dataclass
class Completion:
    text: str
    finish_reason: str  # stop | length
    prompt_tokens: int
    completion_tokens: int


class LocalChatModel:
    """A transformers model (plain or PeftModel) behind the chat template it was trained with."""

    def __init__(self, model, tokenizer, name: str, context_length: int = 0):
        from ftkit.generation import stop_token_ids

        self.model, self.tokenizer, self.name = model, tokenizer, name
        limit = getattr(model.config, "max_position_embeddings", 0) or 0
        self.context_length = min(x for x in (context_length, limit) if x) if (context_length or limit) else 2048
        self.stops = stop_token_ids(tokenizer, model)
        self.lock = threading.Lock()

    def complete(self, request: ChatRequest) -> Completion:
        from ftkit.prompting import render

        try:
            text = render(self.tokenizer, request.messages)
        except Exception as err:  # noqa: BLE001 - chat templates raise anything for conversations they refuse
            raise RequestError(400, f"The chat template refused these messages: {str(err)[:200]}", "messages") from None
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        room = self.context_length - len(ids)
        if room < 1:
            raise RequestError(400, f"The prompt is {len(ids)} tokens; this model's context is {self.context_length} "
                               f"tokens. Shorten the messages.", "messages", "context_length_exceeded")
        with self.lock:  # one generation at a time
            row = self._generate(ids, min(request.max_tokens, room), request)
        return self._completion(row, len(ids), min(request.max_tokens, room), request.stop)

    def _generate(self, ids: list[int], max_new: int, request: ChatRequest) -> list[int]:
        import torch

        if request.seed is not None:
            torch.manual_seed(request.seed)
        sample = request.temperature > 0
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            out = self.model.generate(input_ids=torch.tensor([ids], device=device), max_new_tokens=max_new,
                                      attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                                      do_sample=sample, temperature=request.temperature if sample else None,
                                      top_p=request.top_p if sample else None, top_k=None,
                                      eos_token_id=self.stops, pad_token_id=self.tokenizer.pad_token_id)
        return out[0, len(ids):].tolist()  # (<= max_new,) generated tokens only

    def _completion(self, row: list[int], n_prompt: int, max_new: int, stop_strings: list[str]) -> Completion:
        from ftkit.generation.local import count_until_stop

        n_out, stopped = count_until_stop(row, set(self.stops))
        kept = row[:n_out - 1] if stopped else row[:n_out]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        cut = min((text.find(s) for s in stop_strings if s in text), default=-1)
        if cut >= 0:
            text, stopped = text[:cut], True
        reason = "stop" if stopped or n_out < max_new else "length"
        return Completion(text.strip(), reason, n_prompt, n_out)


class RequestLog:
    """Append-only JSONL of answered requests (what ``ftkit monitor`` reads); one line per request."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.lock = threading.Lock()
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, request: ChatRequest, completion: Completion, latency_s: float) -> None:
        if not self.path:
            return
        line = json.dumps({"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "model": request.model, "messages": request.messages, "output": completion.text,
                           "finish_reason": completion.finish_reason, "prompt_tokens": completion.prompt_tokens,
                           "completion_tokens": completion.completion_tokens, "latency_s": round(latency_s, 4)},
                          ensure_ascii=False)
        with self.lock, open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _completion_body(request: ChatRequest, completion: Completion) -> dict:
    return {"id": f"chatcmpl-{secrets.token_hex(12)}", "object": "chat.completion", "created": int(time.time()),
            "model": request.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": completion.text},
                         "finish_reason": completion.finish_reason}],
            "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens}}


class ChatHandler(BaseHTTPRequestHandler):
    """Routes are a table of (method, path) -> handler method name; anything else is a JSON 404/405."""

    server_version = "ftkit-serve"
    timeout = SOCKET_TIMEOUT_S
    ROUTES = {("GET", "/v1/models"): "_models", ("GET", "/health"): "_health",
              ("POST", "/v1/chat/completions"): "_chat"}

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        name = self.ROUTES.get((method, path))
        try:
            if name is None and method == "GET" and path.startswith("/v1/models/"):
                return self._one_model(path.rsplit("/", 1)[1])
            if name is None:
                allowed = [m for (m, p) in self.ROUTES if p == path]
                if allowed:
                    raise RequestError(405, f"{method} is not allowed on {path}; use {', '.join(allowed)}")
                raise RequestError(404, f"No route {method} {path}; this server has "
                                   f"{', '.join(f'{m} {p}' for m, p in self.ROUTES)}", None, "not_found")
            getattr(self, name)()
        except RequestError as err:
            self._send(err.status, err.body())
        except Exception as err:  # noqa: BLE001 - a bug must still answer JSON, and keep serving
            self._send(500, RequestError(500, f"Generation failed: {type(err).__name__}: {str(err)[:200]}",
                                         None, "server_error").body())

    # -- routes -----------------------------------------------------------------------------------
    def _models(self) -> None:
        self._send(200, {"object": "list", "data": [self._model_entry(n) for n in self.server.model_names]})

    def _one_model(self, name: str) -> None:
        if name not in self.server.model_names:
            raise RequestError(404, f"The model {name!r} does not exist here", "model", "model_not_found")
        self._send(200, self._model_entry(name))

    def _model_entry(self, name: str) -> dict:
        return {"id": name, "object": "model", "created": self.server.started, "owned_by": "ftkit"}

    def _health(self) -> None:
        self._send(200, {"status": "ok", "model": self.server.chat_model.name})

    def _chat(self) -> None:
        request = parse_chat_request(self._body(), self.server.model_names)
        started = time.perf_counter()
        completion = self.server.chat_model.complete(request)
        self.server.request_log.write(request, completion, time.perf_counter() - started)
        self._send(200, _completion_body(request, completion))

    # -- plumbing ---------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise RequestError(411, "Send the body with a Content-Length header (chunked bodies are not accepted)")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise RequestError(400, "The Content-Length header is not a number") from None
        if length <= 0:
            raise RequestError(400, "The request has no body; send a JSON object with model and messages")
        if length > MAX_BODY_BYTES:
            self._drain(length)
            raise RequestError(413, f"The request body is {length:,} bytes; at most {MAX_BODY_BYTES:,} are accepted",
                               None, "request_too_large")
        return self.rfile.read(length)

    def _drain(self, length: int) -> None:
        """Read and drop an oversize body (up to DRAIN_LIMIT_BYTES) so the client can read our 413."""
        self.close_connection = True
        left = min(length, DRAIN_LIMIT_BYTES)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting; nothing left to tell it

    def log_message(self, fmt, *args) -> None:
        if self.server.access_log is not None:
            self.server.access_log(f"{self.address_string()} {fmt % args}")


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client thread never keeps the process alive

    def __init__(self, chat_model, host: str = "127.0.0.1", port: int = 0, log_path: str | Path | None = None,
                 access_log: Callable[[str], None] | None = None):
        try:
            super().__init__((host, port), ChatHandler)
        except OSError as err:
            raise FtkitError(f"Cannot listen on {host}:{port} ({err.strerror}); the port is probably in use: pass "
                             f"another --port (or 0 for any free port).") from None
        self.chat_model = chat_model
        self.model_names = (chat_model.name,)
        self.request_log = RequestLog(log_path)
        self.access_log = access_log
        self.started = int(time.time())

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


class BackgroundServer:
    """``with BackgroundServer(chat_model) as server: ... server.base_url``: serves in a daemon thread and
    always shuts down on exit (tests, the notebook's smoke test)."""

    def __init__(self, chat_model, host: str = "127.0.0.1", port: int = 0, log_path: str | Path | None = None):
        self.httpd = ChatServer(chat_model, host, port, log_path)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return self.httpd.base_url

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def smoke_test(chat_model, conversations: list[list[dict]], max_tokens: int) -> list[dict]:
    """Start the endpoint on a free 127.0.0.1 port, send each conversation through ftkit's OpenAI-compatible
    client plus one malformed request, and stop it. One row per request: what a UAT tester would see."""
    from ftkit.openai_backend import OpenAIChatClient

    rows = []
    with BackgroundServer(chat_model) as server:
        client = OpenAIChatClient(server.base_url, chat_model.name, api_key_env="", max_retries=0, timeout_s=120)
        for i, messages in enumerate(conversations):
            reply = client.chat(messages, max_tokens=max_tokens)
            rows.append({"request": i + 1, "status": 200, "finish_reason": reply.finish_reason,
                         "completion_tokens": reply.completion_tokens, "latency_s": round(reply.latency_s, 3),
                         "answer": reply.text[:200]})
        rows.append(_bad_request(server.base_url, chat_model.name))
    return rows


def _bad_request(base_url: str, model: str) -> dict:
    """A request without messages: the endpoint must refuse it with a 4xx JSON error, not crash."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(base_url + "/chat/completions", data=json.dumps({"model": model}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        status, body = err.code, json.loads(err.read() or b"{}")
    return {"request": "malformed (no messages)", "status": status, "finish_reason": "",
            "completion_tokens": 0, "latency_s": 0.0, "answer": (body.get("error") or {}).get("message", "")[:200]}
