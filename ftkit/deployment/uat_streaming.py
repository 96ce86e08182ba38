"""Streaming chat completions as the OpenAI API defines them: server-sent events carrying
``chat.completion.chunk`` objects, ending with ``data: [DONE]``.

The wire format (what the official ``openai`` client's ``stream=True`` reads)::

    data: {"id": "chatcmpl-..", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}
    data: {... "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}
    data: {... "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    data: {... "choices": [], "usage": {...}}          # only with stream_options.include_usage
    data: [DONE]

Generation streams through a transformers ``BaseStreamer`` (``generate`` calls ``put`` with the prompt, then
with each new token): :class:`TokenStreamer` hands each token to a callback on the generating thread, which
decodes and writes the next delta to the socket; when the client has gone, a stopping criterion ends
generation at the next token, so a closed tab frees the model at once.

The streamed text is exactly the non-streamed answer (same decode, same stop-string cut, same strip):
:class:`DeltaText` only sends text that can no longer change: it holds back the newest token (a later token
can merge with it when decoded), trailing whitespace (the final answer is stripped) and the last
``len(longest stop string) - 1`` characters (they may turn out to start a stop string).

>>> d = DeltaText(["###"])
>>> [d.update(t) for t in ("  Hello", "  Hello wor", "  Hello world ##", "  Hello world ###x")]
['Hel', 'lo w', 'orld', '']
>>> d.finish("Hello world")
''
"""
from __future__ import annotations

import json
import time


def sse(payload: dict | str) -> bytes:
    """One server-sent event: ``data: <json>`` and a blank line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode("utf-8")


DONE = sse("[DONE]")


def chunk(request_id: str, model: str, created: int, delta: dict, finish_reason: str | None = None) -> dict:
    return {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}


def usage_chunk(request_id: str, model: str, created: int, prompt_tokens: int, completion_tokens: int) -> dict:
    return {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None, "choices": [],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


class DeltaText:
    """What of a growing decoded answer is safe to send now (see the module docstring)."""

    def __init__(self, stops: list[str]):
        self.stops = list(stops)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.sent = ""
        self.stopped = False  # a stop string appeared: nothing after it will be sent, generation may end

    def _advance(self, safe: str) -> str:
        if not safe.startswith(self.sent):  # never happens with held-back text; cannot take back what was sent
            return ""
        delta, self.sent = safe[len(self.sent):], safe
        return delta

    def update(self, text: str) -> str:
        """The new delta for ``text`` (everything decoded so far, newest token excluded by the caller)."""
        text = text.lstrip().rstrip("\ufffd")  # a half UTF-8 character decodes to U+FFFD until its next byte
        cut = min((text.find(s) for s in self.stops if s in text), default=-1)
        if cut >= 0:
            text, self.stopped = text[:cut], True
        elif self.hold:
            text = text[:max(len(text) - self.hold, 0)]
        return self._advance(text.rstrip())

    def finish(self, final_text: str) -> str:
        """The last delta: the rest of the final answer (as the non-streamed path computes it)."""
        return self._advance(final_text)


class TokenStreamer:
    """A transformers streamer: skips the prompt ``put``, then calls ``on_token(ids_so_far)`` per new token."""

    def __init__(self, on_token):
        self.on_token = on_token
        self.ids: list[int] = []
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() first puts the whole prompt
            self._prompt_seen = True
            return
        self.ids.extend(int(x) for x in value.reshape(-1).tolist())
        self.on_token(self.ids)

    def end(self) -> None:
        pass


def cancel_criterion(cancelled):
    """A ``StoppingCriteriaList`` that ends generation once ``cancelled()`` is true (the client went away)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), bool(cancelled()), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancel()])


def now() -> int:
    return int(time.time())
