"""Stop behaviour and the chat-template round trip of the model as it will be served.

A fine-tuned model that never learned to emit its end-of-turn token rambles until ``max_new_tokens`` (the
most common post-deployment complaint in fine-tuning trackers). Three checks, all cheap:

1. **runaways**: answers that hit ``max_new_tokens`` without a stop token, counted and shown per system;
2. **serving stop ids**: the template's end-of-turn token (``<|im_end|>`` for ChatML) is among the ids a
   server stops on (``generation_config.eos_token_id`` is what transformers, TGI and vLLM read), else a served
   model keeps going after the answer even though this evaluation (which adds known end-of-turn tokens) stopped;
3. **template round trip**: the prompt the model saw + its answer + the end-of-turn marker is exactly how the
   serving tokenizer's chat template renders that conversation, so what the model produced in evaluation is
   what the served model will produce, turn for turn.
"""
from __future__ import annotations


def runaways(predictions: list, max_chars: int = 160) -> dict:
    """Count of answers cut at max_new_tokens, with the tail of each (where the rambling shows).

    >>> from types import SimpleNamespace as P
    >>> r = runaways([P(id="a", output="ok", hit_max_new_tokens=False), P(id="b", output="x" * 9, hit_max_new_tokens=True)])
    >>> r["runaways"], r["rate"], r["examples"][0]["id"]
    (1, 0.5, 'b')
    """
    cut = [p for p in predictions if p.hit_max_new_tokens]
    n = len(predictions)
    return {"n": n, "runaways": len(cut), "rate": len(cut) / n if n else 0.0,
            "examples": [{"id": p.id, "output_tail": ("…" + p.output[-max_chars:]) if len(p.output) > max_chars
                          else p.output} for p in cut]}


def serving_stops(model, tokenizer) -> dict:
    """Whether the template's end-of-turn token is one a server stops on (``generation_config.eos_token_id``)."""
    from ftkit.chat_format import template_info

    info = template_info(tokenizer)
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    served = sorted({eos} if isinstance(eos, int) else set(eos or []))
    if tokenizer.eos_token_id is not None and not served:
        served = [tokenizer.eos_token_id]  # servers fall back to the tokenizer's eos when the config has none
    ok = info.end_of_turn_id is not None and info.end_of_turn_id in served
    return {"end_of_turn": info.end_of_turn, "end_of_turn_id": info.end_of_turn_id, "served_stop_ids": served,
            "ok": ok}


def round_trip(tokenizer, prompts: list, outputs: list[str]) -> dict:
    """Re-render each (prompt messages + answer) with the serving template and compare with what the model saw.

    ``prompts``: ``ftkit.prompting.PromptItem`` (``messages`` and rendered ``text``); ``outputs``: the answers.
    A failure means the serving template renders the conversation differently from the one used here.
    """
    from ftkit.chat_format import template_info

    eot = template_info(tokenizer).end_of_turn or ""
    failures = []
    for item, output in zip(prompts, outputs):
        expected = item.text + output + eot
        try:
            full = tokenizer.apply_chat_template(item.messages + [{"role": "assistant", "content": output}],
                                                 tokenize=False)
        except Exception as err:  # noqa: BLE001 - templates raise anything; a failure to render is the finding
            failures.append({"id": item.id, "problem": f"the template cannot render the answer: {err}"})
            continue
        if not _same_turn(full, item.text, output, eot):
            at = next((i for i, (a, b) in enumerate(zip(full, expected)) if a != b), min(len(full), len(expected)))
            failures.append({"id": item.id, "problem": f"renders differently from character {at}: "
                             f"{full[max(0, at - 30):at + 30]!r} vs {expected[max(0, at - 30):at + 30]!r}"})
    return {"checked": len(prompts), "failures": failures, "end_of_turn": eot}


def _same_turn(full: str, prompt: str, output: str, eot: str) -> bool:
    """The serving render of prompt + answer starts with the prompt, then the answer, then the end-of-turn marker.
    Whitespace around the answer is the template's (Mistral writes " " + answer, Llama 3 and Gemma ``| trim`` it),
    so it is not compared.

    >>> _same_turn("[INST] q[/INST] ok</s>", "[INST] q[/INST]", "ok", "</s>")
    True
    >>> _same_turn("<s>[INST] q[/INST] ok</s>", "[INST] q[/INST]", "ok", "</s>")
    False
    """
    if not full.startswith(prompt):
        return False
    rest = full[len(prompt):].lstrip()
    answer = output.strip()
    if not rest.startswith(answer):
        return False
    return rest[len(answer):].lstrip().startswith(eot) if eot else True
