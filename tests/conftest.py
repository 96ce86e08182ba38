"""Shared fixtures: real engagements in temporary folders, the tiny random-init test model."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from engagement_helpers import fork_notebook, sample_records  # noqa: F401  (re-exported)

# Kernels started by papermill inherit this. One thread per process: tests run on 2 xdist workers on 2 cores,
# and tiny models spend more time in thread hand-offs than in maths (2 threads measured ~30x slower under load).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random-init Llama with a real tokenizer and ChatML template (built once per test session)."""
    from ftkit.models.tiny import ensure_tiny_model

    return ensure_tiny_model(tmp_path_factory.mktemp("ftkit-cache"))


@pytest.fixture
def engagements_root(tmp_path) -> Path:
    return tmp_path / "engagements"


@pytest.fixture
def make_engagement(tmp_path, engagements_root):
    """make_engagement(client="acme", records=None, settings=None, base_model=None) -> Engagement.

    Creates a real engagement with `ftkit new` semantics from (a slice of) the shipped demo data.
    """
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement

    def make(client: str = "acme", records: list[dict] | None = None, settings: dict | None = None,
             base_model: str | None = None, n: int | None = None):
        data = tmp_path / f"{client}-tickets.jsonl"
        rows = records if records is not None else sample_records(n)
        data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        merged = {**DEMO_SETTINGS, **(settings or {})}
        return create_engagement(client, [data], engagements_root, base_model=base_model, settings=merged)

    return make


class EngagementChain:
    """One engagement whose phases are run on demand, once per test session (phases are slow-ish).

    ``chain.through("baseline")`` runs every phase up to and including baseline that has not succeeded yet
    and returns the Engagement. Tests that modify the engagement must work on ``chain.copy(tmp_path)``.
    """

    def __init__(self, engagement):
        self.engagement = engagement

    def through(self, phase: str, overrides: dict | None = None):
        from ftkit.phases import get_phase, ordered
        from ftkit.runner import run_phases

        target = get_phase(phase)
        todo = [p.name for p in ordered() if (p == target or _is_ancestor(p.name, target))
                and self.engagement.latest_run_id(p) is None]
        if todo:
            outcomes = run_phases(self.engagement, todo, overrides or {}, progress=False)
            failed = [o for o in outcomes if not o.succeeded]
            assert not failed, f"{failed[0].phase} {failed[0].status}: {failed[0].error} ({failed[0].run_dir})"
        return self.engagement

    def copy(self, tmp_path):
        import shutil
        from ftkit.engagement import Engagement

        target = tmp_path / "engagements-copy" / self.engagement.slug
        shutil.copytree(self.engagement.path, target, ignore=shutil.ignore_patterns(".ftkit.lock"))
        return Engagement.from_dir(target)


def _is_ancestor(name: str, target) -> bool:
    from ftkit.phases import get_phase

    stack = list(target.upstream)
    while stack:
        current = stack.pop()
        if current == name:
            return True
        stack.extend(get_phase(current).upstream)
    return False


# Small but real: 200 demo tickets, the tiny random model, a few training steps.
TINY_SETTINGS = {
    "baseline.shots": 1, "baseline.max_examples": 12, "baseline.max_new_tokens": 24,
    "training.max_steps": 6, "training.batch_size": 4, "training.max_seq_length": 256, "training.eval_steps": 3,
    "data.max_seq_length": 256, "evaluation.ab_items": 8,
}


@pytest.fixture(scope="session")
def tiny_chain(tmp_path_factory, tiny_model_dir) -> EngagementChain:
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement

    folder = tmp_path_factory.mktemp("tiny-chain")
    data = folder / "tickets.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sample_records(200)), encoding="utf-8")
    engagement = create_engagement("tiny", [data], folder / "engagements", base_model=str(tiny_model_dir),
                                   settings={**DEMO_SETTINGS, **TINY_SETTINGS})
    return EngagementChain(engagement)
