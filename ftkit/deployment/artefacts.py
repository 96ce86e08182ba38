"""Find what training produced and load it: an adapter on the base model, a full model, or a merged export.

The training phase writes, in its run folder, ``adapter/`` (peft: ``adapter_config.json`` + safetensors) or
``model/`` (a full transformers model), and the tokenizer with the chat template it trained with (in that
folder, in ``tokenizer/``, or at the top of the run folder). The deployment plan writes ``export/merged/``
(adapter merged into the base) or ``export/adapter/`` in its own run folder. ``ftkit serve`` prefers a merged
export that passed the equivalence check, else the training run's own output.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import FtkitError

ADAPTER_DIR = "adapter"
MODEL_DIR = "model"
EXPORT_MERGED = "export/merged"
EXPORT_ADAPTER = "export/adapter"
EXPORT_REPORT = "export/equivalence.json"
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


@dataclass(frozen=True)
class TrainedModel:
    """What to load. ``kind``: 'adapter' (base + peft adapter) or 'full' (a complete model folder)."""

    kind: str
    weights_dir: Path  # the adapter folder, or the full model folder
    base: str  # base_model.id (adapter) or the model folder (full)
    base_revision: str = ""
    tokenizer_dir: Path | None = None  # None: use the base model's tokenizer
    run_dir: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.base} + LoRA adapter" if self.kind == "adapter" else str(self.weights_dir)

    def adapter_config(self) -> dict:
        if self.kind != "adapter":
            return {}
        return json.loads((self.weights_dir / "adapter_config.json").read_text(encoding="utf-8"))


def find_tokenizer_dir(*folders: Path) -> Path | None:
    """The first folder holding a saved tokenizer (tokenizer_config.json or tokenizer.json)."""
    for folder in folders:
        if folder is not None and any((folder / name).is_file() for name in TOKENIZER_FILES):
            return folder
    return None


def find_trained_model(training_run_dir: str | Path, base_id: str, base_revision: str = "") -> TrainedModel:
    """The trained model of a training run folder; a clear error naming what is missing."""
    run_dir = Path(training_run_dir)
    adapter, full = run_dir / ADAPTER_DIR, run_dir / MODEL_DIR
    if (adapter / "adapter_config.json").is_file():
        if not (adapter / "adapter_model.safetensors").is_file():
            raise FtkitError(f"{adapter} has no adapter_model.safetensors; ftkit only loads safetensors weights "
                             f"(pickle files can run code). Re-run the training phase.")
        tok = find_tokenizer_dir(adapter, run_dir / "tokenizer", run_dir)
        return TrainedModel("adapter", adapter, base_id, base_revision, tok, run_dir)
    if (full / "config.json").is_file():
        tok = find_tokenizer_dir(full, run_dir / "tokenizer", run_dir)
        return TrainedModel("full", full, str(full), "", tok, run_dir)
    raise FtkitError(f"The training run {run_dir} has neither {ADAPTER_DIR}/adapter_config.json nor "
                     f"{MODEL_DIR}/config.json; re-run the training phase (`ftkit run CLIENT --phase training`).")


def input_files(trained: TrainedModel) -> list[Path]:
    """The trained weights' files, to record as inputs of the deployment plan (hashes in the manifest)."""
    return sorted(p for p in trained.weights_dir.rglob("*") if p.is_file())


def export_of(deployment_run_dir: str | Path | None) -> TrainedModel | None:
    """The merged export of a deployment plan run, if it exists and passed its equivalence check."""
    if deployment_run_dir is None:
        return None
    run_dir = Path(deployment_run_dir)
    merged, report = run_dir / EXPORT_MERGED, run_dir / EXPORT_REPORT
    if not (merged / "config.json").is_file() or not report.is_file():
        return None
    if not json.loads(report.read_text(encoding="utf-8")).get("passed"):
        return None
    return TrainedModel("full", merged, str(merged), "", find_tokenizer_dir(merged), run_dir)


def served_model(engagement) -> TrainedModel:
    """What ``ftkit serve`` serves: the latest deployment plan's merged export, else the latest training run's
    output on the configured base model."""
    from ftkit.config import load_config

    exported = export_of(engagement.latest_run_dir("deployment_plan"))
    if exported is not None:
        return exported
    training = engagement.latest_run_dir("training")
    if training is None:
        raise FtkitError(f"Engagement '{engagement.slug}' has no succeeded training run to serve; run "
                         f"`ftkit run {engagement.slug} --phase training` first.")
    config = load_config(engagement.config_path)
    return find_trained_model(training, config.base_model.id, config.base_model.revision)


def load_trained(trained: TrainedModel, device: str = "cpu", dtype=None, trust_remote_code: bool = False):
    """(model, tokenizer) in eval mode: base + adapter as a PeftModel, or the full model folder."""
    from ftkit.models import load_model, load_tokenizer, resolve_model

    def base_source():  # resolved only when the base model is needed (short names build a cache on first use)
        return resolve_model(trained.base, trained.base_revision, trust_remote_code=trust_remote_code)

    if trained.kind == "adapter":
        from peft import PeftModel

        from ftkit.chat_plan import fit_embeddings

        base = load_model(base_source(), device=device, dtype=dtype)
        if trained.tokenizer_dir:  # turn tokens ftkit added for a base model: the adapter carries their rows
            fit_embeddings(base, load_tokenizer(str(trained.tokenizer_dir)))
        try:
            model = PeftModel.from_pretrained(base, str(trained.weights_dir)).eval()
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            raise FtkitError(f"Cannot apply the adapter {trained.weights_dir} to {trained.base}: "
                             f"{str(err).splitlines()[0][:200]}. Was it trained on this base model?") from None
    else:
        model = load_model(str(trained.weights_dir), device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(str(trained.tokenizer_dir), trust_remote_code=trust_remote_code) \
        if trained.tokenizer_dir else load_tokenizer(base_source())
    return model, tokenizer
