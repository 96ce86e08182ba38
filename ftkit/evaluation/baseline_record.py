"""The baseline's exact test set, prompts and generation settings, read from its recorded files.

Nothing is re-derived from engagement.yaml: the examples are the ids of the baseline's ``predictions.jsonl``
(in its order), the prompt spec (system prompt, few-shot examples, seed) comes from its ``prompt.json``, and
``max_new_tokens``/batch size/backend from its ``results.json``. Prompts rebuilt with the fine-tuned model's
tokenizer must hash exactly like the baseline's (``prompt_sha256`` per prediction); any difference (another
chat template, edited system prompt, changed split) stops the phase with the ids that differ, because a
comparison on different prompts would not be paired any more.
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.errors import PhaseFailed


@dataclass
class BaselineRecord:
    """What the baseline ran, enough to run the fine-tuned model the same way."""

    run_id: str
    results: object  # the baseline's typed results (ftkit.baseline.phase.BaselineResults)
    prompt: dict  # its prompt.json
    predictions: list  # ftkit.generation.Prediction rows, in test order
    records: list[dict]  # the test records those predictions answer, same order
    spec: object  # ftkit.prompting.PromptSpec
    max_new_tokens: int
    batch_size: int
    backend: str

    @property
    def headline_metric(self) -> str:
        return self.results.headline_metric

    @property
    def model_id(self) -> str:
        return str(self.results.model.get("name", ""))


def load_baseline(run) -> BaselineRecord:
    """Read the latest baseline run (recording its files as inputs) and the test records it answered."""
    from ftkit.fsutil import read_json
    from ftkit.generation import read_predictions
    from ftkit.prompting import PromptSpec, load_splits

    results = run.upstream("baseline")
    prompt = read_json(run.upstream_file("baseline", "prompt.json"))
    predictions = read_predictions(run.upstream_file("baseline", "predictions.jsonl"))
    by_id = {str(r.get("id")): r for r in load_splits(run, 0)["test"]}
    missing = [p.id for p in predictions if p.id not in by_id]
    if missing:
        raise PhaseFailed(f"The baseline answered {len(missing)} example(s) that are not in the latest data audit's "
                          f"test split ({', '.join(missing[:5])}): the data audit was re-run after the baseline. "
                          f"Re-run the baseline (`ftkit run {run.engagement.slug} --phase baseline`) first.")
    from ftkit.evaluation.yardstick import on_current_references

    # A review sheet (data.corrections) may have corrected test answers since the baseline ran: one yardstick.
    predictions = on_current_references(predictions, [by_id[p.id] for p in predictions])
    gen = results.generation
    spec = PromptSpec(system_prompt=prompt.get("system_prompt", ""), shots=prompt.get("shots", []),
                      seed=prompt.get("seed", 0))
    return BaselineRecord(run.upstream_dir("baseline").name, results, prompt, predictions,
                         [by_id[p.id] for p in predictions], spec, int(gen.get("max_new_tokens") or 0),
                         int(gen.get("batch_size") or 16), str(gen.get("backend") or "local"))


def prompts_for(baseline: BaselineRecord, tokenizer) -> list:
    """The fine-tuned model's prompts, verified against the baseline's hashes; PhaseFailed naming the ids.

    For a local baseline the hash is over the text rendered by the chat template, so this also proves the
    fine-tuned tokenizer carries the same template. For an HTTP baseline it is over the messages.
    """
    from ftkit.generation import RENDERED_BACKENDS
    from ftkit.prompting import build_prompts

    local = baseline.backend in RENDERED_BACKENDS  # local and vllm hash the rendered text
    rendered = build_prompts(baseline.records, baseline.spec, tokenizer)
    hashed = rendered if local else build_prompts(baseline.records, baseline.spec, None)
    differ = [p.id for p, h in zip(baseline.predictions, hashed) if h.sha256 != p.prompt_sha256]
    if differ:
        template_note = ""
        if local and baseline.prompt.get("chat_template_sha256"):
            import hashlib
            now = hashlib.sha256((getattr(tokenizer, "chat_template", "") or "").encode("utf-8")).hexdigest()
            if now != baseline.prompt["chat_template_sha256"]:
                template_note = (f" The fine-tuned model's chat template (sha256 {now[:12]}) is not the baseline's "
                                 f"({baseline.prompt['chat_template_sha256'][:12]}): train and serve with one template.")
        raise PhaseFailed(f"{len(differ)} of {len(hashed)} prompts differ from the ones the baseline used "
                          f"({', '.join(differ[:5])}{' ...' if len(differ) > 5 else ''}), so the comparison would "
                          f"not be on the same inputs.{template_note} Re-run the baseline, then the evaluation.")
    return rendered
