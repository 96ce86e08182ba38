"""Chat completion requests as the OpenAI API defines them, validated: every rule a client can break is a
:class:`RequestError` with the HTTP status, the parameter at fault and a message saying what to send instead.

>>> parse_chat_request(b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}', ("m",)).max_tokens
256
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 256
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 4096


class RequestError(Exception):
    """A client mistake: becomes an HTTP status and an OpenAI-style error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str = "invalid_request",
                 headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}  # e.g. Retry-After on 429, WWW-Authenticate on 401

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    model: str
    messages: list[dict]
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False  # server-sent events (ftkit.deployment.uat_streaming)
    include_usage: bool = False  # stream_options.include_usage: a last chunk with token counts


def _number(body: dict, name: str, low: float, high: float, default: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(400, f"'{name}' must be a number from {low:g} to {high:g}, got {value!r}", name)
    return float(value)


def _content(message: dict, i: int) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)  # OpenAI's content parts, text only
    raise RequestError(400, f"messages[{i}].content must be a string (or a list of text parts), got "
                       f"{type(content).__name__}", f"messages[{i}].content")


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' is required: a non-empty list of {role, content} objects", "messages")
    if len(messages) > MAX_MESSAGES:
        raise RequestError(400, f"'messages' has {len(messages)} entries; at most {MAX_MESSAGES}", "messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RequestError(400, f"messages[{i}] must be an object with role and content", f"messages[{i}]")
        if m.get("role") not in ROLES:
            raise RequestError(400, f"messages[{i}].role {m.get('role')!r} is not one of {', '.join(ROLES)}",
                               f"messages[{i}].role")
        out.append({"role": m["role"], "content": _content(m, i)})
    if not any(m["role"] == "user" for m in out):
        raise RequestError(400, "'messages' needs at least one user message", "messages")
    return out


def _max_tokens(body: dict) -> int:
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    value = body.get(name, DEFAULT_MAX_TOKENS)
    if value is None:
        return DEFAULT_MAX_TOKENS
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOKENS_CAP:
        raise RequestError(400, f"'{name}' must be a whole number from 1 to {MAX_TOKENS_CAP}, got {value!r}", name)
    return value


def _stop(body: dict) -> list[str]:
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop
    if stops is None:
        return []
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise RequestError(400, "'stop' must be a string or a list of up to 4 non-empty strings", "stop")
    return stops


def parse_chat_request(raw: bytes, model_names: tuple[str, ...]) -> ChatRequest:
    """Validate a chat completions body; raises RequestError (4xx) naming the parameter at fault."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise RequestError(400, f"The request body is not valid JSON ({err}); send a JSON object.", None,
                           "invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"The request body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError(400, f"'model' is required; this server serves: {', '.join(model_names)}", "model")
    if model not in model_names:
        raise RequestError(404, f"The model {model!r} does not exist here; this server serves: "
                           f"{', '.join(model_names)} (see GET /v1/models)", "model", "model_not_found")
    stream, include_usage = _stream(body)
    if body.get("n", 1) != 1:
        raise RequestError(400, f"'n' must be 1 (one answer per request), got {body.get('n')!r}", "n")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(400, f"'seed' must be a whole number, got {seed!r}", "seed")
    return ChatRequest(model, _messages(body), _max_tokens(body), _number(body, "temperature", 0, 2, 0.0),
                       _number(body, "top_p", 1e-6, 1, 1.0), _stop(body), seed, stream, include_usage)


def _stream(body: dict) -> tuple[bool, bool]:
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise RequestError(400, f"'stream' must be true or false, got {stream!r}", "stream")
    options = body.get("stream_options")
    if options is None:
        return stream, False
    if not stream:
        raise RequestError(400, "'stream_options' is only allowed with \"stream\": true", "stream_options")
    if not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool):
        raise RequestError(400, "'stream_options' must be an object like {\"include_usage\": true}", "stream_options")
    return stream, bool(options.get("include_usage", False))
