"""Describe a model for the manifest and reports: id, revision or file hashes, size, and whether it is a toy.

Hashes are of the files actually loaded (the resolved folder), so a manifest pins the exact weights even
for a local folder or a converted GGUF, where there is no hub revision.
"""
from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path

from ftkit.fsutil import sha256_file
from ftkit.models.cache import read_note
from ftkit.models.resolve import ModelSource, resolve_model
from ftkit.models.tiny import TINY_NOTE, is_tiny_random


def folder_files_sha256(folder: str | Path) -> dict[str, str]:
    """sha256 of every regular, non-hidden file under ``folder`` (relative posix path -> hex)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in files}


def folder_sha256(file_hashes: dict[str, str]) -> str:
    """One hash for a folder: sha256 over sorted 'path<TAB>sha256' lines (order- and name-sensitive).

    >>> folder_sha256({"b": "2", "a": "1"}) == folder_sha256({"a": "1", "b": "2"})
    True
    """
    lines = "".join(f"{name}\t{digest}\n" for name, digest in sorted(file_hashes.items()))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def safetensors_parameter_count(folder: str | Path) -> int:
    """Number of parameters stored in the folder's .safetensors files, read from their headers only.

    Header layout: 8-byte little-endian length N, then N bytes of JSON {name: {dtype, shape, offsets}}.
    Tied weights (lm_head = embeddings) are stored once, matching ``sum(p.numel() for p in model.parameters())``.
    """
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        total += sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    return total


def _hub_commit(folder: Path) -> str:
    # The hub cache keeps each revision under .../snapshots/<40-hex commit>/
    return folder.name if folder.parent.name == "snapshots" and len(folder.name) == 40 else ""


def _local_folder(source: ModelSource) -> Path | None:
    if source.is_local:
        return Path(source.path)
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(source.path, "config.json", revision=source.revision or None)
    return Path(found).parent if isinstance(found, str) else None


def display_name(source: ModelSource) -> str:
    """A short name for tables and sentences: the short name or hub id, else the folder/file name.

    >>> display_name(ModelSource("/tmp/x/my-model", "folder", "/tmp/x/my-model"))
    'my-model'
    """
    if source.kind in ("folder", "gguf"):
        return Path(source.requested.rstrip("/\\")).name or source.requested
    return source.requested


def describe_model(model: str | ModelSource, revision: str = "", cache_dir=None) -> dict:
    """Provenance of a model: what the manifest's ``base_model`` entry and the reports need."""
    source = model if isinstance(model, ModelSource) else resolve_model(model, revision, cache_dir)
    folder = _local_folder(source)
    hashes = folder_files_sha256(folder) if folder else {}
    note = read_note(folder) if folder else None
    tiny = bool(folder and is_tiny_random(folder))
    return {
        "id": source.requested,
        "name": display_name(source),
        "kind": source.kind,
        "path": source.path,
        "revision": source.revision or (_hub_commit(folder) if folder else ""),
        "files_sha256": folder_sha256(hashes) if hashes else "",
        "files": hashes,
        "parameters": safetensors_parameter_count(folder) if folder else None,
        "is_tiny_random": tiny,
        "note": TINY_NOTE if tiny else "",
        "source_gguf_sha256": (note or {}).get("source_gguf_sha256", ""),
    }
