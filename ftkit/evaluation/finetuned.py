"""Load a training run's output for generation: a LoRA/QLoRA adapter on the base model, or a full model.

The tokenizer comes from the training output when it saved one (it carries the chat template training used,
which is the one the model will be served with), else from the base model. For adapters the base model is
loaded in full precision on the chosen device and the adapter applied unmerged; ``with_adapter_disabled``
gives the base model's behaviour from the same object (peft's ``disable_adapter``), which is how the
forgetting probe scores "before" without loading the base model twice.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import PhaseFailed

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class FineTuned:
    model: object
    tokenizer: object
    kind: str  # "adapter" or "full"
    path: Path
    training_run_id: str
    description: dict


def output_folder(training_dir: Path) -> tuple[str, Path]:
    """("adapter" | "full", folder) of a training run; PhaseFailed when it has neither."""
    for kind, name in (("adapter", "adapter"), ("full", "model")):
        if (training_dir / name).is_dir():
            return kind, training_dir / name
    raise PhaseFailed(f"Training run {training_dir.name} has neither adapter/ nor model/: it did not save a model. "
                      f"Re-run the training phase.")


def serving_tokenizer(config, training_dir: str | Path) -> tuple[object, bool]:
    """(tokenizer, whether it came from the training output): the one the model will be served with."""
    from ftkit.models import base_model_source, load_tokenizer

    _, folder = output_folder(Path(training_dir))
    from ftkit.chat_plan import prepare_tokenizer

    if any((folder / f).is_file() for f in TOKENIZER_FILES):
        tokenizer, saved = load_tokenizer(str(folder)), True  # carries the template training prepared
    else:
        bm = config.base_model
        tokenizer, saved = load_tokenizer(base_model_source(bm)), False
    prepare_tokenizer(tokenizer, config)  # records the plan; installs the engagement's template if none was saved
    return tokenizer, saved


def load_finetuned(config, training_dir: str | Path, device: str | None = None) -> FineTuned:
    """The fine-tuned model of ``training_dir`` in eval mode, with the tokenizer it will be served with."""
    from ftkit.models import base_model_source, load_model

    training_dir = Path(training_dir)
    kind, folder = output_folder(training_dir)
    bm = config.base_model
    tokenizer, has_tokenizer = serving_tokenizer(config, training_dir)
    if kind == "full":
        model = load_model(str(folder), device=device)
    else:
        from peft import PeftModel

        from ftkit.chat_plan import fit_embeddings

        base = load_model(base_model_source(bm), device=device)
        fit_embeddings(base, tokenizer)  # turn tokens ftkit added: the adapter carries their embedding rows
        model = PeftModel.from_pretrained(base, str(folder)).eval()
    description = {"training_run": training_dir.name, "kind": kind, "path": str(folder),
                   "base_model": bm.id, "tokenizer_from": "training output" if has_tokenizer else "base model"}
    return FineTuned(model, tokenizer, kind, folder, training_dir.name, description)


@contextlib.contextmanager
def base_behaviour(finetuned: FineTuned, config, device: str | None = None):
    """Yield a model that behaves like the base model: the adapter disabled, or the base loaded (full)."""
    if finetuned.kind == "adapter":
        with finetuned.model.disable_adapter():
            yield finetuned.model
        return
    from ftkit.models import base_model_source, load_model

    yield load_model(base_model_source(config.base_model), device=device)
