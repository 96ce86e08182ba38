"""Export the fine-tuned model for handover, and prove the export answers like the model that was evaluated.

Export: a LoRA adapter is merged into the base model (peft ``merge_and_unload``) and saved as safetensors in
the serving precision, with the tokenizer and its chat template and a generation config whose EOS ids are
the template's stop tokens. A full fine-tune is re-saved in the serving precision.

Equivalence check (the "quality drop after merge/export" lesson): the reference is base + adapter exactly as
evaluated (fp32). On sample prompts from the test split, teacher-forced next-token distributions of
(1) the merged model in memory (fp32: proves the merge) and (2) the export re-loaded from disk (proves the
saved weights, precision and tokenizer) are compared with the reference: mean and max KL divergence per
position (nats; scale-free, robust to near-ties), largest absolute logit difference, top-1 agreement, and
whether greedy answers are identical. The chat template must be byte-identical. Pass = KL within the
tolerance of the saved precision.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ftkit.deployment.artefacts import EXPORT_ADAPTER, EXPORT_MERGED, TrainedModel, load_trained
from ftkit.errors import FtkitError
from ftkit.fsutil import atomic_write_json
from ftkit.prompting import PromptItem, PromptSpec, build_prompts

# Mean KL (nats per position) allowed between reference and candidate; max KL may be 20x that. bf16 keeps 8
# mantissa bits (relative rounding ~0.4 %), fp16 11. Measured on a SmolLM2-135M LoRA export: fp32 merge
# mean 7e-8 (max 5e-7); bf16 export mean 3.8e-4 (max 3.4e-3), top-1 agreement 99.2 %, greedy answers identical.
KL_TOLERANCE = {"fp32": 1e-6, "bf16": 5e-3, "fp16": 1e-3}
MAX_KL_FACTOR = 20
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle"}  # can run code when loaded: not part of a handover
SAVE_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8": "bfloat16", "int4": "bfloat16"}


@dataclass
class Comparison:
    """Reference vs candidate on the same texts. ``passed`` = KL within ``kl_tolerance`` and template identical."""

    stage: str
    dtype: str
    n_prompts: int
    n_positions: int
    mean_kl: float
    max_kl: float
    max_abs_logit_diff: float
    top1_agreement: float
    greedy_identical: int
    kl_tolerance: float
    template_identical: bool = True
    passed: bool = False
    examples: list[dict] = field(default_factory=list)  # {id, reference_output, candidate_output}


@dataclass
class ExportResult:
    kind: str  # merged | full | adapter
    folder: Path
    dtype: str
    comparisons: list[Comparison]
    files: dict[str, int]  # relative path -> bytes
    chat_template_sha256: str

    @property
    def passed(self) -> bool:
        return bool(self.comparisons) and all(c.passed for c in self.comparisons)

    @property
    def size_mb(self) -> float:
        return sum(self.files.values()) / 1e6

    def to_dict(self) -> dict:
        return {"kind": self.kind, "folder": str(self.folder), "dtype": self.dtype, "passed": self.passed,
                "size_mb": round(self.size_mb, 2), "files": self.files, "chat_template_sha256": self.chat_template_sha256,
                "comparisons": [asdict(c) for c in self.comparisons]}


def comparison_rows(result: ExportResult) -> list[dict]:
    """One table row per comparison stage, for the notebook and the report."""
    return [{"stage": c.stage, "mean KL (nats)": f"{c.mean_kl:.2e}", "max KL": f"{c.max_kl:.2e}",
             "tolerance": f"{c.kl_tolerance:.0e}", "max |logit diff|": round(c.max_abs_logit_diff, 4),
             "top-1 agreement": f"{c.top1_agreement:.1%}", "greedy identical": f"{c.greedy_identical}/{c.n_prompts}",
             "template identical": c.template_identical, "passed": c.passed} for c in result.comparisons]


def sample_prompts(records: list[dict], system_prompt: str, tokenizer, n: int) -> list[PromptItem]:
    """The first ``n`` records as zero-shot prompts with the engagement's system prompt (how it is served)."""
    if not records:
        raise FtkitError("No test records to check the export on; the data audit's test split is empty.")
    return build_prompts(records[:max(1, n)], PromptSpec(system_prompt=system_prompt), tokenizer)


def teacher_forced_texts(tokenizer, prompts: list[PromptItem]) -> list[str]:
    """Prompt + reference answer rendered by the chat template: scores the answer positions as well."""
    return [tokenizer.apply_chat_template(p.messages + [{"role": "assistant", "content": p.reference}], tokenize=False)
            for p in prompts]


def forward_logits(model, tokenizer, texts: list[str]) -> list:
    """fp32 CPU logits, one (T_i, V) tensor per text; one text at a time so no padding enters the comparison."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(device)  # (1, T)
            out.append(model(input_ids=ids).logits[0].float().cpu())  # (T, V)
    return out


def compare_logits(reference: list, candidate: list) -> dict:
    """KL(reference || candidate) per position (mean, max), max |logit diff|, top-1 agreement; over all texts."""
    import torch

    ref, cand = torch.cat(reference), torch.cat(candidate)  # (sum T_i, V)
    if ref.shape != cand.shape:
        raise FtkitError(f"The exported model's vocabulary differs from the trained one ({tuple(cand.shape)} vs "
                         f"{tuple(ref.shape)} logits): the export is not the evaluated model.")
    log_p, log_q = torch.log_softmax(ref, -1), torch.log_softmax(cand, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0)  # (positions,)
    return {"n_positions": int(ref.shape[0]), "mean_kl": float(kl.mean()), "max_kl": float(kl.max()),
            "max_abs_logit_diff": float((ref - cand).abs().max()),
            "top1_agreement": float((ref.argmax(-1) == cand.argmax(-1)).float().mean())}


def greedy_outputs(model, tokenizer, prompts: list[PromptItem], max_new_tokens: int) -> list[str]:
    from ftkit.generation import generate_local

    return [p.output for p in generate_local(model, tokenizer, prompts, max_new_tokens, batch_size=len(prompts),
                                             progress=False)]


@dataclass
class Reference:
    """What the evaluated model produced on the sample prompts: logits, greedy answers, its chat template."""

    prompts: list[PromptItem]
    texts: list[str]
    logits: list
    outputs: list[str]
    chat_template: str


def reference_of(model, tokenizer, prompts: list[PromptItem], max_new_tokens: int) -> Reference:
    texts = teacher_forced_texts(tokenizer, prompts)
    return Reference(prompts, texts, forward_logits(model, tokenizer, texts),
                     greedy_outputs(model, tokenizer, prompts, max_new_tokens), tokenizer.chat_template or "")


def compare(stage: str, dtype: str, ref: Reference, model, tokenizer, max_new_tokens: int,
            with_generation: bool = True) -> Comparison:
    """Score ``model``/``tokenizer`` against the reference; the template must render the prompts identically."""
    template_ok = (tokenizer.chat_template or "") == ref.chat_template and \
        teacher_forced_texts(tokenizer, ref.prompts) == ref.texts
    stats = compare_logits(ref.logits, forward_logits(model, tokenizer, ref.texts))
    outputs = greedy_outputs(model, tokenizer, ref.prompts, max_new_tokens) if with_generation else list(ref.outputs)
    tol = KL_TOLERANCE.get(dtype, KL_TOLERANCE["bf16"])
    passed = template_ok and stats["mean_kl"] <= tol and stats["max_kl"] <= MAX_KL_FACTOR * tol
    examples = [{"id": p.id, "reference_output": a, "candidate_output": b}
                for p, a, b in zip(ref.prompts, ref.outputs, outputs)]
    return Comparison(stage, dtype, len(ref.prompts), stats["n_positions"], stats["mean_kl"], stats["max_kl"],
                      stats["max_abs_logit_diff"], stats["top1_agreement"],
                      sum(a == b for a, b in zip(ref.outputs, outputs)), tol, template_ok, passed, examples)


def _torch_dtype(name: str):
    import torch

    return getattr(torch, SAVE_DTYPE[name])


def _save_generation_config(model, tokenizer, folder: Path) -> None:
    """EOS = every stop token of the template, so servers that read generation_config.json stop at end-of-turn."""
    from ftkit.generation import stop_token_ids

    config = model.generation_config
    config.eos_token_id = stop_token_ids(tokenizer, model)
    config.pad_token_id = tokenizer.pad_token_id
    config.save_pretrained(folder)


def _files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def _fresh(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def export_model(trained: TrainedModel, run_dir: str | Path, dtype: str, records: list[dict], system_prompt: str,
                 n_prompts: int = 4, max_new_tokens: int = 32, merge: bool = True) -> ExportResult:
    """Export into ``run_dir/export/`` and check it; writes ``export/equivalence.json``. Never raises on a
    failed check: the result says so, and the notebook turns it into a blocking finding."""
    from ftkit.models import load_model, load_tokenizer

    model, tokenizer = load_trained(trained, device="cpu")
    prompts = sample_prompts(records, system_prompt, tokenizer, n_prompts)
    ref = reference_of(model, tokenizer, prompts, max_new_tokens)
    comparisons = []
    if trained.kind == "adapter" and not merge:
        folder = _fresh(Path(run_dir) / EXPORT_ADAPTER)
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        del model
        shipped = TrainedModel("adapter", folder, trained.base, trained.base_revision, folder)
        model, tokenizer = load_trained(shipped, device="cpu")
        comparisons.append(compare("adapter re-loaded from disk (fp32)", "fp32", ref, model, tokenizer, max_new_tokens))
        return _finish(ExportResult("adapter", folder, "fp32", comparisons, _files(folder), _sha(tokenizer)), run_dir)
    if trained.kind == "adapter":
        ship_adapter(trained, tokenizer, Path(run_dir) / EXPORT_ADAPTER)  # for vLLM --enable-lora and rollback
        model = model.merge_and_unload()  # in place: no second copy of the weights in memory
        comparisons.append(compare("merge in memory (fp32)", "fp32", ref, model, tokenizer, max_new_tokens,
                                   with_generation=False))
    folder = _fresh(Path(run_dir) / EXPORT_MERGED)
    model.to(_torch_dtype(dtype)).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _save_generation_config(model, tokenizer, folder)
    del model
    exported = load_model(str(folder), device="cpu")  # fp32 compute on CPU; the weights carry the saved precision
    exported_tok = load_tokenizer(str(folder))
    saved = "fp32" if SAVE_DTYPE[dtype] == "float32" else ("fp16" if SAVE_DTYPE[dtype] == "float16" else "bf16")
    comparisons.append(compare(f"export re-loaded from disk ({saved})", saved, ref, exported, exported_tok, max_new_tokens))
    kind = "merged" if trained.kind == "adapter" else "full"
    return _finish(ExportResult(kind, folder, saved, comparisons, _files(folder), _sha(exported_tok)), run_dir)


def ship_adapter(trained: TrainedModel, tokenizer, folder: Path) -> Path:
    """Copy the trained adapter byte for byte (its hashes match the training run's) plus the tokenizer."""
    folder = _fresh(folder)
    for path in trained.weights_dir.iterdir():
        if path.is_file() and path.suffix not in PICKLE_SUFFIXES:  # e.g. Trainer's training_args.bin: never ship pickles
            shutil.copy2(path, folder / path.name)
    if not (folder / "tokenizer_config.json").is_file():
        tokenizer.save_pretrained(folder)
    return folder


def _sha(tokenizer) -> str:
    return hashlib.sha256((tokenizer.chat_template or "").encode("utf-8")).hexdigest()


def _finish(result: ExportResult, run_dir) -> ExportResult:
    atomic_write_json(Path(run_dir) / "export" / "equivalence.json", result.to_dict())
    return result
