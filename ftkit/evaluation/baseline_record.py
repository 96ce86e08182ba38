"""The baseline's exact test set, prompts and generation settings, read from its recorded files.

Nothing is re-derived from engagement.yaml: the examples are the ids of the baseline's ``predictions.jsonl``
(in its order), the prompt spec (system prompt, few-shot examples, seed) comes from its ``prompt.json``, and
``max_new_tokens``/batch size/backend from its ``results.json``. Prompts rebuilt with the fine-tuned model's
tokenizer must hash exactly like the baseline's (``prompt_sha256`` per prediction); any difference (another
chat template, edited system prompt, changed split) stops the phase with the ids that differ, because a
comparison on different prompts would not be paired any more.

With ``baseline.prompt_search`` the baseline's prompt is the best one found on validation, and the fine-tuned
model answers under the prompt it was trained and will be served with (prompt.json ``served_prompt``: the
consultant's zero-shot prompt). ``served_spec`` / ``served_predictions`` are that prompt and the base model's
answers under it (the baseline's own when the winner is that prompt): the fine-tuned prompts are verified against
their hashes, and they are the evaluation's same-prompt view. Without a search both are the baseline's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    served_spec: object = None  # the fine-tuned model's PromptSpec; None = ``spec``
    served_predictions: list | None = None  # the base model under ``served_spec``; None = ``predictions``
    excluded: dict = field(default_factory=dict)  # source -> test examples left out: not the client's own

    def __post_init__(self):
        self.served_spec = self.spec if self.served_spec is None else self.served_spec
        self.served_predictions = self.predictions if self.served_predictions is None else self.served_predictions

    @property
    def headline_metric(self) -> str:
        return self.results.headline_metric

    @property
    def model_id(self) -> str:
        return str(self.results.model.get("name", ""))

    @property
    def two_prompts(self) -> bool:
        """True when the baseline's (best) prompt is not the fine-tuned model's: the evaluation has two views."""
        return self.served_predictions is not self.predictions

    def prompt_record(self, served: bool = False) -> dict:
        """One side's prompt as results.json records it: name, shots, system prompt, spec hash and the sha256
        over its per-example prompt hashes (``served``: the fine-tuned model's side)."""
        import hashlib

        from ftkit.baseline.prompt_search import spec_sha256

        spec, preds = (self.served_spec, self.served_predictions) if served else (self.spec, self.predictions)
        search, sp = self.prompt.get("prompt_search") or {}, self.prompt.get("served_prompt") or {}
        name = (sp.get("name") if served else search.get("winner")) or f"{len(spec.shots)}-shot (baseline.shots)"
        return {"name": name, "n_shots": len(spec.shots), "shot_ids": spec.shot_ids,
                "system_prompt": spec.system_prompt, "spec_sha256": spec_sha256(spec),
                # = evaluation.iterations.prompts_fingerprint (which imports this module, so not imported here)
                "prompts_sha256": hashlib.sha256("\n".join(p.prompt_sha256 for p in preds).encode("utf-8")).hexdigest()}


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
    subset = gen.get("subset") or {}
    if subset.get("ids") and subset["ids"] != [p.id for p in predictions]:
        raise PhaseFailed(f"The baseline's predictions.jsonl does not answer the test ids its results record as "
                          f"scored ({subset.get('n')} of {subset.get('of')}): the run folder was edited. Re-run the "
                          f"baseline (`ftkit run {run.engagement.slug} --phase baseline`) first.")
    spec = PromptSpec(system_prompt=prompt.get("system_prompt", ""), shots=prompt.get("shots", []),
                      seed=prompt.get("seed", 0), instruction=prompt.get("instruction", ""),
                      replace_system=bool(prompt.get("replace_system", False)))
    served_spec, served_preds = _served(run, prompt, predictions)
    predictions, excluded = client_examples_only(predictions, by_id)
    if served_preds is not None:  # the same examples on both views
        kept = {p.id for p in predictions}
        served_preds = [p for p in served_preds if p.id in kept]
    return BaselineRecord(run.upstream_dir("baseline").name, results, prompt, predictions,
                         [by_id[p.id] for p in predictions], spec, int(gen.get("max_new_tokens") or 0),
                         int(gen.get("batch_size") or 16), str(gen.get("backend") or "local"), served_spec, served_preds, excluded)


def _served(run, prompt: dict, predictions: list) -> tuple:
    """(served spec, the base model's predictions under it) from prompt.json's ``served_prompt``; (None, None)
    when the baseline's prompt is the served one (no search, or the zero-shot prompt won)."""
    from ftkit.generation import read_predictions
    from ftkit.prompting import PromptSpec

    served = prompt.get("served_prompt")
    if not served or served.get("predictions", "predictions.jsonl") == "predictions.jsonl":
        return (PromptSpec(**served["spec"]), None) if served else (None, None)
    preds = read_predictions(run.upstream_file("baseline", served["predictions"]))
    if [p.id for p in preds] != [p.id for p in predictions]:
        raise PhaseFailed(f"The baseline's {served['predictions']} does not answer the same test examples, in the same "
                          f"order, as its predictions.jsonl. Re-run the baseline (`ftkit run {run.engagement.slug} "
                          f"--phase baseline`) first.")
    return PromptSpec(**served["spec"]), preds


def client_examples_only(predictions: list, by_id: dict) -> tuple[list, dict]:
    """The predictions of the client's own test examples, and {source: n} of those left out: a test record with
    a ``source`` (synthetic, uat: see the split records' contract) is no yardstick of the client's task."""
    kept, excluded = [], {}
    for p in predictions:
        source = by_id[p.id].get("source")
        if source is None:
            kept.append(p)
        else:
            excluded[source] = excluded.get(source, 0) + 1
    return kept, excluded


def prompts_for(baseline: BaselineRecord, tokenizer) -> list:
    """The fine-tuned model's prompts (``served_spec``), verified against the hashes of the base model's answers
    under the same prompt (``served_predictions``); PhaseFailed naming the ids.

    For a local baseline the hash is over the text rendered by the chat template, so this also proves the
    fine-tuned tokenizer carries the same template. For an HTTP baseline it is over the messages.
    """
    from ftkit.generation import RENDERED_BACKENDS
    from ftkit.prompting import build_prompts

    local = baseline.backend in RENDERED_BACKENDS  # local and vllm hash the rendered text
    rendered = build_prompts(baseline.records, baseline.served_spec, tokenizer)  # the fine-tuned model's prompt
    hashed = rendered if local else build_prompts(baseline.records, baseline.served_spec, None)
    differ = [p.id for p, h in zip(baseline.served_predictions, hashed) if h.sha256 != p.prompt_sha256]
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
