"""A small client for OpenAI-compatible chat completions (``POST {base_url}/chat/completions``).

Used by the baseline (and evaluation) to score a managed model. The API key is read from the environment
variable *named* in engagement.yaml at the moment of each request: it is never stored on the object,
logged, put in an error message or written to any file. Standard library only (urllib), bounded retries
with exponential back-off on 429/5xx and connection errors.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from ftkit.errors import ConfigError, FtkitError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def request_headers(api_key_env: str) -> dict:
    """JSON request headers, with ``Authorization: Bearer`` when the variable named ``api_key_env`` holds a key
    (read at each call, never stored). Shared with ``augmentation.teacher``'s HTTP teacher."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    key = os.environ.get(api_key_env, "") if api_key_env else ""
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


@dataclass
class ChatReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop", "length" (hit max_tokens), ...
    latency_s: float


@dataclass
class OpenAIChatClient:
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 1.0
    temperature: float = 0.0  # greedy-like, so baselines are repeatable where the provider allows

    @classmethod
    def from_settings(cls, settings) -> "OpenAIChatClient":
        """From ``config.baseline.openai`` (OpenAIBackendSettings); every missing setting reported at once."""
        problems = [f"baseline.openai.{name}: required for backend 'openai'"
                    for name in ("base_url", "model") if not getattr(settings, name)]
        if settings.base_url and not settings.base_url.startswith(("http://", "https://")):
            problems.append(f"baseline.openai.base_url: {settings.base_url!r} must start with http:// or https://")
        if problems:
            raise ConfigError(problems)
        return cls(settings.base_url.rstrip("/"), settings.model, settings.api_key_env or "")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict:
        return request_headers(self.api_key_env)

    def chat(self, messages: list[dict], max_tokens: int) -> ChatReply:
        """One chat completion; raises FtkitError with the status and what to do when it fails for good."""
        body = json.dumps({"model": self.model, "messages": messages, "max_tokens": int(max_tokens),
                           "temperature": self.temperature}).encode("utf-8")
        started = time.perf_counter()
        payload = self._post_with_retries(body)
        latency = time.perf_counter() - started
        try:
            choice = payload["choices"][0]
            usage = payload.get("usage") or {}
            return ChatReply(str(choice["message"].get("content") or ""), int(usage.get("prompt_tokens") or 0),
                             int(usage.get("completion_tokens") or 0), str(choice.get("finish_reason") or ""),
                             latency)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError):
            raise FtkitError(f"{self.url} answered without choices[0].message.content; is it an OpenAI-compatible "
                             f"chat completions endpoint?") from None

    def _post_with_retries(self, body: bytes) -> dict:
        for attempt in range(self.max_retries + 1):
            retry_reason = ""
            try:
                return self._post(body)
            except urllib.error.HTTPError as err:
                if err.code not in RETRY_STATUS:
                    raise self._http_error(err) from None
                retry_reason = f"HTTP {err.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                retry_reason = str(getattr(err, "reason", err))
            if attempt < self.max_retries:
                time.sleep(self.backoff_s * 2 ** attempt)
        raise FtkitError(f"{self.url} failed {self.max_retries + 1} times (last: {retry_reason}); check "
                         f"baseline.openai.base_url and that the endpoint is up, then re-run the phase.")

    def _post(self, body: bytes) -> dict:
        request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            try:
                return json.loads(response.read().decode("utf-8"))
            except ValueError:
                raise FtkitError(f"{self.url} did not answer with JSON; check baseline.openai.base_url "
                                 f"(it usually ends in /v1).") from None

    def _http_error(self, err: urllib.error.HTTPError) -> FtkitError:
        if err.code in (401, 403):
            where = (f"the environment variable {self.api_key_env}" if self.api_key_env
                     else "baseline.openai.api_key_env")
            return FtkitError(f"{self.url} refused the request (HTTP {err.code}): set a valid API key in {where} "
                              f"(the key itself never goes in engagement.yaml).")
        if err.code == 404:
            return FtkitError(f"{self.url} does not exist (HTTP 404); baseline.openai.base_url usually ends in /v1.")
        reason = _reason(err)
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            reason = reason.replace(key, "***")  # a server may echo what it got; the key must not reach logs
        return FtkitError(f"{self.url} rejected the request (HTTP {err.code}: {reason}); check "
                          f"baseline.openai.model ({self.model!r}) and max_new_tokens.")


def _reason(err: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(err.read().decode("utf-8", "replace"))
        message = (detail.get("error") or {}).get("message") if isinstance(detail, dict) else None
        return str(message or err.reason)[:200]
    except (ValueError, OSError, AttributeError):
        return str(err.reason)[:200]
