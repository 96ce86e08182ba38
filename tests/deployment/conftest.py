"""Fixtures for the deployment tests: a real LoRA adapter on the tiny random model, made with peft here so
these tests do not wait for the training phase."""
from __future__ import annotations

from pathlib import Path

import pytest

from deploy_helpers import make_adapter


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run: with `pytest -n 2` on 2 cores, two threads per worker
    oversubscribe the cores and the tiny model's small matmuls spin instead of computing (measured: a
    reference pass took 11 s with 2 threads under load, 0.34 s with 1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_training_run(tiny_model_dir, tmp_path_factory) -> Path:
    """A folder shaped like a training run: adapter/ (peft safetensors + config + tokenizer)."""
    run_dir = tmp_path_factory.mktemp("training-run")
    make_adapter(tiny_model_dir, run_dir / "adapter")
    return run_dir


@pytest.fixture(scope="session")
def tiny_trained(tiny_training_run, tiny_model_dir):
    from ftkit.deployment.artefacts import find_trained_model

    return find_trained_model(tiny_training_run, str(tiny_model_dir))


@pytest.fixture(scope="session")
def tiny_chat_model(tiny_trained):
    from ftkit.deployment.artefacts import load_trained
    from ftkit.deployment.server import LocalChatModel

    model, tokenizer = load_trained(tiny_trained, device="cpu")
    return LocalChatModel(model, tokenizer, "tiny-ft", context_length=256)


@pytest.fixture(scope="session")
def tiny_export(tiny_trained, tmp_path_factory):
    """(run folder, ExportResult): the adapter merged and saved in bf16, checked for equivalence."""
    from deploy_helpers import ticket_records
    from ftkit.deployment.export import export_model

    run_dir = tmp_path_factory.mktemp("deploy-run")
    return run_dir, export_model(tiny_trained, run_dir, "bf16", ticket_records(6), "Triage the ticket.", n_prompts=3,
                                 max_new_tokens=8)
