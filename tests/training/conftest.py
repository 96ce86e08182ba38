"""Fixtures for the training tests: the tiny model's tokenizer and tokenized demo tickets."""
from __future__ import annotations

import json
import os

import pytest

# Idle OpenMP threads sleep instead of spinning (see ftkit.training.phase.quiet_cpu_threads); only effective
# when this runs before torch is first imported in the pytest process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ftkit.resources import sample_data_dir


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from ftkit.models import load_tokenizer

    return load_tokenizer(str(tiny_model_dir), padding_side="right")


@pytest.fixture(scope="session")
def tickets():
    lines = (sample_data_dir() / "support_tickets.jsonl").read_text(encoding="utf-8").splitlines()
    return [dict(json.loads(line), id=f"t{i}") for i, line in enumerate(lines[:80])]


@pytest.fixture(scope="session")
def tiny_examples(tiny_tokenizer, tickets):
    from ftkit.training.dataset import tokenize_split

    return tokenize_split(tiny_tokenizer, tickets, 256).examples


@pytest.fixture(scope="session")
def eot_id(tiny_tokenizer):
    from ftkit.chat_format import template_info

    return template_info(tiny_tokenizer).end_of_turn_id


def _set_training(engagement, **values) -> None:
    from ftkit import yamlio

    data = yamlio.safe_load(engagement.config_path.read_text(encoding="utf-8"))
    data.setdefault("training", {}).update(values)
    engagement.config_path.write_text(yamlio.dump(data), encoding="utf-8")


@pytest.fixture
def set_training():
    """set_training(engagement, **values): change training.* in engagement.yaml (of a test copy) as a consultant would."""
    return _set_training


@pytest.fixture
def audited(tiny_chain, tmp_path):
    """A private copy of the tiny engagement whose data audit has succeeded (training not yet run there)."""
    import shutil

    tiny_chain.through("data_audit")
    engagement = tiny_chain.copy(tmp_path)
    shutil.rmtree(engagement.phase_dir("training"), ignore_errors=True)
    _drop_phase_from_audit_log(engagement, "training")
    return engagement


def _drop_phase_from_audit_log(engagement, phase: str) -> None:
    """The session's shared engagement may already have trained (another test ran it): its audit log then names
    training runs this copy no longer has, and `ftkit verify` would rightly report them missing. Rebuild the copy's
    hash chain without those entries, as if the phase had never run here."""
    import json

    from ftkit.audit_log import GENESIS, entry_hash, read_entries

    path = engagement.path / "audit.jsonl"
    previous, lines = GENESIS, []
    for seq, entry in enumerate(e for e in read_entries(path) if e.get("phase") != phase):
        entry = {**{k: v for k, v in entry.items() if k != "hash"}, "seq": seq, "prev_hash": previous}
        entry["hash"] = previous = entry_hash(entry)
        lines.append(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
    path.write_text("".join(lines), encoding="utf-8")
