"""Generation through an OpenAI-compatible endpoint: one request per prompt, same Prediction rows."""
from __future__ import annotations

from ftkit.generation.predictions import Prediction
from ftkit.prompting import PromptItem


def generate_openai(client, prompts: list[PromptItem], max_new_tokens: int, progress: bool = True) -> list[Prediction]:
    """``client`` is an ``ftkit.openai_backend.OpenAIChatClient``; token counts come from the server's usage
    block, ``hit_max_new_tokens`` from ``finish_reason == "length"``."""
    from tqdm import tqdm  # text bar: ipywidgets bars do not survive headless papermill runs

    results = []
    for number, item in enumerate(tqdm(prompts, desc="requesting", unit="ex", disable=not progress, mininterval=2.0)):
        reply = client.chat(item.messages, max_tokens=max_new_tokens)
        results.append(Prediction(item.id, item.sha256, reply.text.strip(), item.reference, reply.prompt_tokens,
                                  reply.completion_tokens, round(reply.latency_s, 4),
                                  reply.finish_reason == "length", item.label, 1, number))
    return results
