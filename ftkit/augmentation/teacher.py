"""The teacher: the model that drafts candidate examples.

``HttpTeacher`` talks to any OpenAI-compatible chat completions endpoint (a provider, a local vLLM, ``ftkit
serve``): the key is read from the environment variable *named* in ``augmentation.teacher.api_key_env`` at each
request and sent as ``Authorization: Bearer``; it is never stored, logged or written. 429 and 5xx answers are
retried a bounded number of times, waiting what the server's ``Retry-After`` says (capped) or an exponential
back-off. ``LocalTeacher`` drafts with the engagement's base model on this machine (no network).

Every failure is a :class:`TeacherError` with a code (``teacher.*``) the command turns into a finding; ``fatal``
ones (a refused key, an unknown endpoint) stop the run at once, the others are counted per request.
"""
from __future__ import annotations

import email.utils
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ftkit.errors import FtkitError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRIES = 3  # attempts after the first, per request
BACKOFF_S = 1.0  # first exponential back-off wait in seconds (doubles per attempt) when no Retry-After is given
MAX_RETRY_AFTER_S = 60.0  # a Retry-After longer than this (seconds) is capped: the run must stay bounded
TIMEOUT_S = 120.0  # one HTTP request, in seconds


class TeacherError(FtkitError):
    def __init__(self, code: str, message: str, fatal: bool = False):
        super().__init__(message)
        self.code, self.fatal = code, fatal


@dataclass
class TeacherReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    latency_s: float
    retries: int = 0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), capped; None if absent/bad.

    >>> retry_after_seconds("2"), retry_after_seconds("999"), retry_after_seconds("soon")
    (2.0, 60.0, None)
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, min(when - (time.time() if now is None else now), MAX_RETRY_AFTER_S))


@dataclass
class HttpTeacher:
    base_url: str
    model: str
    api_key_env: str = ""
    max_retries: int = MAX_RETRIES
    backoff_s: float | None = None  # None: the module's BACKOFF_S, read at each wait
    timeout_s: float = TIMEOUT_S

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def identity(self) -> dict:
        """Who drafted the candidates, for the provenance (no key, only the variable's name)."""
        return {"kind": "openai_compatible", "base_url": self.base_url, "model": self.model,
                "api_key_env": self.api_key_env}

    def _headers(self) -> dict:
        from ftkit.openai_backend import request_headers

        return request_headers(self.api_key_env)

    def chat(self, messages: list[dict], max_tokens: int, temperature: float, top_p: float, seed: int) -> TeacherReply:
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": int(max_tokens),
                           "temperature": float(temperature), "top_p": float(top_p), "seed": int(seed)}).encode()
        started = time.perf_counter()
        payload, retries = self._post_with_retries(body)
        try:
            choice = payload["choices"][0]
            usage = payload.get("usage") or {}
            return TeacherReply(str(choice["message"].get("content") or ""), int(usage.get("prompt_tokens") or 0),
                                int(usage.get("completion_tokens") or 0), str(choice.get("finish_reason") or ""),
                                time.perf_counter() - started, retries)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise TeacherError("teacher.bad_shape", f"{self.url} answered without choices[0].message.content: is "
                               f"augmentation.teacher.base_url an OpenAI-compatible endpoint (it usually ends in /v1)?")

    def _post_with_retries(self, body: bytes) -> tuple[dict, int]:
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                return self._post(body), attempt
            except urllib.error.HTTPError as err:
                if err.code not in RETRY_STATUS:
                    raise self._http_error(err) from None
                last, wait = f"HTTP {err.code}", retry_after_seconds(err.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                last = str(getattr(err, "reason", err))
            if attempt < self.max_retries:
                backoff = BACKOFF_S if self.backoff_s is None else self.backoff_s
                time.sleep(backoff * 2 ** attempt if wait is None else wait)
        raise TeacherError("teacher.gave_up", f"{self.url} failed {self.max_retries + 1} times (last: {last}); "
                           f"check that the teacher is up (and its rate limits), then run `ftkit augment` again: it "
                           f"continues where it stopped.")

    def _post(self, body: bytes) -> dict:
        request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            raw = response.read()
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise TeacherError("teacher.not_json", f"{self.url} did not answer with JSON; check "
                               f"augmentation.teacher.base_url (it usually ends in /v1).") from None

    def _http_error(self, err: urllib.error.HTTPError) -> TeacherError:
        if err.code in (401, 403):
            where = f"the environment variable {self.api_key_env}" if self.api_key_env else \
                "augmentation.teacher.api_key_env (the NAME of the variable holding the key)"
            return TeacherError("teacher.refused", f"{self.url} refused the request (HTTP {err.code}): set a valid "
                                f"key in {where}.", fatal=True)
        if err.code == 404:
            return TeacherError("teacher.not_found", f"{self.url} does not exist (HTTP 404); "
                                f"augmentation.teacher.base_url usually ends in /v1.", fatal=True)
        return TeacherError("teacher.rejected", f"{self.url} rejected the request (HTTP {err.code}); check "
                            f"augmentation.teacher.model ({self.model!r}) and max_tokens.", fatal=True)


class LocalTeacher:
    """The engagement's base model drafting on this machine (``augmentation.teacher.base_url`` empty)."""

    def __init__(self, chat_model, model_id: str):
        self.chat_model, self.model_id = chat_model, model_id

    @classmethod
    def from_config(cls, config) -> "LocalTeacher":
        from ftkit.deployment.server import LocalChatModel
        from ftkit.models import load_model, load_tokenizer, pick_device
        from ftkit.models.resolve import base_model_source

        source = base_model_source(config.base_model)
        tokenizer = load_tokenizer(source)
        model = load_model(source, device=pick_device())
        return cls(LocalChatModel(model, tokenizer, "local-base-model"), source.requested)

    def identity(self) -> dict:
        return {"kind": "local_base_model", "model": self.model_id}

    def chat(self, messages: list[dict], max_tokens: int, temperature: float, top_p: float, seed: int) -> TeacherReply:
        from ftkit.deployment.chat_request import ChatRequest, RequestError

        started = time.perf_counter()
        request = ChatRequest(model=self.chat_model.name, messages=messages, max_tokens=int(max_tokens),
                              temperature=float(temperature), top_p=float(top_p), seed=int(seed), stop=[])
        try:
            done = self.chat_model.complete(request)
        except RequestError as err:  # the prompt is too long for the model, or its chat template refuses it
            raise TeacherError("teacher.rejected", f"the local base model cannot answer the request: {err}; lower "
                               f"augmentation.shots or set augmentation.teacher.base_url.", fatal=True) from None
        return TeacherReply(done.text, done.prompt_tokens, done.completion_tokens, done.finish_reason,
                            time.perf_counter() - started)


def teacher_for(config):
    """The teacher ``augmentation.teacher`` names: HTTP when base_url is set, else the local base model."""
    t = config.augmentation.teacher
    if t.base_url:
        return HttpTeacher(t.base_url.rstrip("/"), t.model, t.api_key_env)
    return LocalTeacher.from_config(config)
