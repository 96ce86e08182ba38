"""An OpenAI-compatible endpoint for user-acceptance testing: ``POST /v1/chat/completions`` (plain or
streamed), ``GET /v1/models``, the UAT page at ``/`` and its feedback endpoint ``POST /uat/feedback``.

Standard library HTTP (``ThreadingHTTPServer``): a UAT endpoint for a handful of testers, and a backend for
ftkit's own baseline/evaluation runs through ``ftkit.openai_backend``; production serving uses the vLLM/TGI
configs. Requests are validated by ``ftkit.deployment.chat_request`` (pure functions, so every rule is
tested), generation runs one request at a time under a lock (the model is not thread-safe; CPU has no
batching to gain), and every problem a client can cause is a 4xx JSON error in OpenAI's shape:
``{"error": {"message", "type", "param", "code"}}``. Binds 127.0.0.1 unless told otherwise. Each answered
request can be appended to a JSONL log in the format ``ftkit monitor`` reads.

Access (issue 18): with a :class:`~ftkit.deployment.uat_tokens.TokenStore` every route but ``GET /health`` and
the page shell ``GET /`` (static HTML/JS with no data; it asks for the tester's token and fetches everything
through authenticated routes) needs ``Authorization: Bearer <token>``; a missing, unknown or revoked token is a
401 in OpenAI's shape. Without a store (``tokens=None``: library use, the deployment phase's smoke test,
``ftkit serve --no-auth``) requests are made by ``anonymous``, and only a loopback address may be bound.
Generations are admitted up to ``max_pending`` at once (one runs, the rest wait their turn); beyond that a
request gets 429 with ``Retry-After``.
"""
from __future__ import annotations

import json
import math
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
MAX_PENDING = 8  # generations admitted at once (1 running + 7 waiting); more get 429 + Retry-After
RETRY_AFTER_MAX_S = 60  # the Retry-After estimate (queue length x recent latency) is capped at this
LOOPBACK = ("127.0.0.1", "localhost", "::1")
ANONYMOUS = "anonymous"  # the tester of a server without tokens


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
        ids, max_new = self.prompt_ids(request)
        with self.lock:  # one generation at a time
            row = self._generate(ids, max_new, request)
        return self._completion(row, len(ids), max_new, request.stop)

    def prompt_ids(self, request: ChatRequest) -> tuple[list[int], int]:
        """(prompt token ids, max new tokens): ``max_tokens`` capped by the room the served context leaves."""
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
        return ids, min(request.max_tokens, room)

    def stream(self, request: ChatRequest, send, cancelled, prepared: tuple[list[int], int] | None = None) -> Completion:
        """Generate, calling ``send(delta_text)`` as text becomes final; ``cancelled()`` true ends generation
        at the next token (the client went away). Returns the same Completion ``complete`` would."""
        from ftkit.deployment.uat_streaming import DeltaText, TokenStreamer, cancel_criterion
        from ftkit.generation.local import count_until_stop

        ids, max_new = prepared or self.prompt_ids(request)
        stops, delta = set(self.stops), DeltaText(request.stop)

        def on_token(row: list[int]) -> None:
            n_out, stopped = count_until_stop(row, stops)
            kept = row[:n_out - 1]  # without the stop token, or holding back the newest one (see DeltaText)
            piece = delta.update(self.tokenizer.decode(kept, skip_special_tokens=True))
            if piece and not cancelled():
                send(piece)

        with self.lock:
            # Ends at the next token once the client is gone or a stop string was seen (nothing more would be sent).
            row = self._generate(ids, max_new, request, TokenStreamer(on_token),
                                 cancel_criterion(lambda: cancelled() or delta.stopped))
        completion = self._completion(row, len(ids), max_new, request.stop)
        rest = delta.finish(completion.text)
        if rest and not cancelled():
            send(rest)
        return completion

    def _generate(self, ids: list[int], max_new: int, request: ChatRequest, streamer=None, cancel=None) -> list[int]:
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
                                      eos_token_id=self.stops, pad_token_id=self.tokenizer.pad_token_id,
                                      streamer=streamer, stopping_criteria=cancel)
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


def _completion_body(request_id: str, request: ChatRequest, completion: Completion) -> dict:
    return {"id": request_id, "object": "chat.completion", "created": int(time.time()),
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
              ("POST", "/v1/chat/completions"): "_chat", ("GET", "/"): "_page", ("GET", "/uat/info"): "_info",
              ("POST", "/uat/feedback"): "_feedback"}
    OPEN_ROUTES = ("_health", "_page")  # no token needed: a health check, and the page shell (no data in it)

    def do_GET(self):  # noqa: N802 - http.server's naming
        self._dispatch("GET")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        name = self.ROUTES.get((method, path))
        self.tester = None
        try:
            if name not in self.OPEN_ROUTES:
                self.tester = self._authenticate()
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
            self._send(err.status, err.body(), err.headers)
        except Exception as err:  # noqa: BLE001 - a bug must still answer JSON, and keep serving
            self._send(500, RequestError(500, f"Generation failed: {type(err).__name__}: {str(err)[:200]}",
                                         None, "server_error").body())

    def _authenticate(self) -> str:
        """The tester making this request (from the bearer token), or ANONYMOUS on a server without tokens."""
        tokens = self.server.tokens
        if tokens is None:
            return ANONYMOUS
        challenge = {"WWW-Authenticate": 'Bearer realm="ftkit-serve"'}
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RequestError(401, "This endpoint needs an access token: send 'Authorization: Bearer <token>'. Ask "
                               "the consultant for yours (ftkit serve CLIENT --issue-token NAME).", None,
                               "missing_api_key", challenge)
        tester = tokens.tester(token.strip())
        if tester is None:
            raise RequestError(401, "The access token is unknown or has been revoked; ask the consultant for a new "
                               "one.", None, "invalid_api_key", challenge)
        return tester

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

    def _page(self) -> None:
        from ftkit.deployment.uat_page import page_html

        data = page_html().encode("utf-8")
        self._send_bytes(200, data, "text/html; charset=utf-8",
                         {"Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; form-action 'none'; "
                          "base-uri 'none'; frame-ancestors 'none'", "Cache-Control": "no-store",
                          "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"})

    def _info(self) -> None:
        self._send(200, {**self.server.identity, "model": self.server.chat_model.name, "tester": self.tester,
                         "context_length": self.server.chat_model.context_length,
                         "system_prompt": self.server.system_prompt, "feedback": self.server.uat_log.feedback_path
                         is not None})

    def _feedback(self) -> None:
        from ftkit.deployment.uat_log import parse_feedback

        line = self.server.uat_log.record_feedback(self.tester, parse_feedback(self._body()))
        self._send(200, {"ok": True, "feedback_id": line["feedback_id"], "request_id": line["request_id"]})

    def _chat(self) -> None:
        from ftkit.deployment.uat_log import new_request_id

        request = parse_chat_request(self._body(), self.server.model_names)
        with self.server.admission():
            request_id, started = new_request_id(), time.perf_counter()

            def record(completion: Completion, finished: bool = True) -> None:
                # Logged (and fsynced) before the client hears the end: feedback right after always finds it.
                latency = time.perf_counter() - started
                self.server.note_latency(latency)
                if not finished:
                    completion.finish_reason = "cancelled"  # the client closed the stream; logged as it was
                self.server.uat_log.record_request(request_id, self.tester, request, completion, latency,
                                                   request.stream)

            if request.stream:
                self._stream(request_id, request, record)
                return
            completion = self.server.chat_model.complete(request)
            record(completion)
        self._send(200, _completion_body(request_id, request, completion))

    def _stream(self, request_id: str, request: ChatRequest, record) -> None:
        """Answer as server-sent events; ``record(completion, finished)`` logs it before the last chunk."""
        from ftkit.deployment import uat_streaming as sse

        created, name = sse.now(), request.model
        prepared = self.server.chat_model.prompt_ids(request)  # a too-long prompt is still a 400 JSON error
        gone = threading.Event()

        def write(data: bytes) -> None:
            if gone.is_set():
                return
            try:
                self.wfile.write(data)
                self.wfile.flush()
            except OSError:  # BrokenPipe / ConnectionReset: the tester closed the tab
                gone.set()

        self.close_connection = True  # no Content-Length: the stream ends when the connection does
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Request-Id", request_id)
        self.end_headers()
        write(sse.sse(sse.chunk(request_id, name, created, {"role": "assistant", "content": ""})))
        completion = self.server.chat_model.stream(
            request, lambda text: write(sse.sse(sse.chunk(request_id, name, created, {"content": text}))), gone.is_set,
            prepared)
        record(completion, not gone.is_set())
        write(sse.sse(sse.chunk(request_id, name, created, {}, completion.finish_reason)))
        if request.include_usage:
            write(sse.sse(sse.usage_chunk(request_id, name, created, completion.prompt_tokens,
                                          completion.completion_tokens)))
        write(sse.DONE)

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

    def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send_bytes(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), "application/json", headers)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting; nothing left to tell it

    def log_message(self, fmt, *args) -> None:
        if self.server.access_log is not None:  # names the tester, never the token (headers are not logged)
            who = getattr(self, "tester", None) or "-"
            self.server.access_log(f"{self.address_string()} {who} {fmt % args}")


class ChatServer(ThreadingHTTPServer):
    """The endpoint. ``tokens``: a TokenStore (every route but /health and / needs a tester's token) or None
    (anonymous; loopback only). ``feedback_path``: where ``POST /uat/feedback`` appends (None: no feedback).
    ``identity``: what the page shows (training run, export, base model); ``system_prompt``: the engagement's,
    which the page sends as the system message, as production clients do."""

    daemon_threads = True  # a stuck client thread never keeps the process alive

    def __init__(self, chat_model, host: str = "127.0.0.1", port: int = 0, log_path: str | Path | None = None,
                 access_log: Callable[[str], None] | None = None, tokens=None, feedback_path: str | Path | None = None,
                 max_pending: int = MAX_PENDING, identity: dict | None = None, system_prompt: str = ""):
        from ftkit.deployment.uat_log import UatLog

        if tokens is None and host not in LOOPBACK:
            raise FtkitError(f"Refusing to listen on {host} without access tokens: anyone who can reach it could use "
                             f"the model. Issue tokens (ftkit serve CLIENT --issue-token NAME) or bind 127.0.0.1.")
        if max_pending < 1:
            raise FtkitError(f"max_pending must be at least 1, got {max_pending}")
        try:
            super().__init__((host, port), ChatHandler)
        except OSError as err:
            raise FtkitError(f"Cannot listen on {host}:{port} ({err.strerror}); the port is probably in use: pass "
                             f"another --port (or 0 for any free port).") from None
        self.chat_model = chat_model
        self.model_names = (chat_model.name,)
        self.uat_log = UatLog(log_path, feedback_path)
        self.access_log = access_log
        self.tokens = tokens
        self.identity = dict(identity or {})
        self.system_prompt = system_prompt
        self.started = int(time.time())
        self.max_pending = max_pending
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._latency_s = 1.0  # running mean of recent generation latencies, for Retry-After

    def admission(self):
        """Context manager: admit one generation or raise 429 with Retry-After (queue length x latency)."""
        server = self

        class _Admit:
            def __enter__(self):
                with server._pending_lock:
                    if server._pending >= server.max_pending:
                        wait = min(RETRY_AFTER_MAX_S, max(1, math.ceil(server._pending * server._latency_s)))
                        raise RequestError(429, f"The server is busy: {server._pending} generations are running or "
                                           f"waiting (at most {server.max_pending}). Retry in {wait} s.", None,
                                           "rate_limit_exceeded", {"Retry-After": str(wait)})
                    server._pending += 1

            def __exit__(self, *exc):
                with server._pending_lock:
                    server._pending -= 1

        return _Admit()

    def note_latency(self, seconds: float) -> None:
        with self._pending_lock:
            self._latency_s = 0.8 * self._latency_s + 0.2 * seconds

    @property
    def request_log(self):  # the request log's writer (kept under its old name for callers of the library)
        return self.uat_log

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def page_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class BackgroundServer:
    """``with BackgroundServer(chat_model) as server: ... server.base_url``: serves in a daemon thread and
    always shuts down on exit (tests, the notebook's smoke test). Keyword arguments go to :class:`ChatServer`."""

    def __init__(self, chat_model, host: str = "127.0.0.1", port: int = 0, log_path: str | Path | None = None,
                 **options):
        self.httpd = ChatServer(chat_model, host, port, log_path, **options)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return self.httpd.base_url

    @property
    def page_url(self) -> str:
        return self.httpd.page_url

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
