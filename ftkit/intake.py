"""`ftkit new`: create an engagement folder from the template and take in the client's data.

The folder is built under a temporary name and renamed into place, so a failure (bad file, full disk)
never leaves a half-made engagement. Data files are copied into ``data/`` unchanged and hashed; the
hashes go to ``intake.json`` and the audit log, and ``ftkit verify`` checks them later.
"""
from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

from ftkit import audit_log
from ftkit.config import TASK_TYPES, parse_config
from ftkit.engagement import Engagement, check_client_name
from ftkit.errors import DataError, FtkitError, UsageError
from ftkit.fsutil import atomic_write_json, atomic_write_text, sha256_file
from ftkit.resources import templates_dir


def render_engagement_yaml(values: dict) -> str:
    """The commented template with ``values`` ({"client.name": ..., "data.files": [...]}) filled in.

    ruamel.yaml's round-trip mode keeps every comment, so the file stays self-documenting.
    """
    from ftkit.yamlio import round_trip

    yaml = round_trip()
    doc = yaml.load((templates_dir() / "engagement.yaml").read_text(encoding="utf-8"))
    for dotted, value in values.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def create_engagement(client: str, data_files: list[str | Path], root: str | Path, task: str | None = None,
                      base_model: str | None = None, settings: dict | None = None) -> Engagement:
    """Create ``<root>/<client>/`` with engagement.yaml, data/ and intake.json; return the Engagement."""
    check_client_name(client)
    if task is not None and task not in TASK_TYPES:
        raise UsageError(f"--task {task!r} is not one of {', '.join(TASK_TYPES)}.")
    engagement = Engagement(Path(root).resolve(), client)
    if engagement.path.exists():
        raise FtkitError(f"Engagement '{client}' already exists at {engagement.path}; choose another name or "
                         f"work in the existing one (`ftkit status {client}`).")
    sources = [_check_data_file(Path(f)) for f in data_files]
    if not sources:
        raise UsageError("Give at least one data file with --data FILE.")
    names = _unique_names(sources)

    values = {"client.name": client, "client.slug": client, "data.files": [f"data/{n}" for n in names]}
    if task:
        values["task.type"] = task
    if base_model:
        values["base_model.id"] = base_model
    values.update(settings or {})
    text = render_engagement_yaml(values)
    from ftkit.yamlio import safe_load
    parse_config(safe_load(text), source="engagement.yaml (new)")  # refuse bad settings before writing

    try:
        engagement.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{client}.creating-", dir=engagement.root))
    except OSError as err:
        raise FtkitError(f"Cannot create an engagement under {engagement.root}: {err.strerror}. Make the folder "
                         f"writable or pass another --root.") from None
    try:
        (staging / "data").mkdir()
        hashes = {}
        for source, name in zip(sources, names):
            hashes.update(_copy_hashed(source, staging / "data" / name, f"data/{name}"))
        atomic_write_text(staging / "engagement.yaml", text)
        atomic_write_json(staging / "intake.json", {"files": hashes,
                                                    "sources": {f"data/{n}": str(s) for s, n in zip(sources, names)}})
        staging.rename(engagement.path)
    except OSError as err:  # full disk or unwritable root: nothing half-made stays behind
        shutil.rmtree(staging, ignore_errors=True)
        raise FtkitError(f"Cannot create engagement '{client}' under {engagement.root}: {err.strerror} "
                         f"({err.filename or 'copying the data'}). Free disk space or fix permissions and run "
                         f"`ftkit new` again; nothing was created.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    audit_log.append_event(engagement.audit_path, "engagement_created", client=client, data_files=hashes)
    return engagement


def _copy_hashed(source: Path, target: Path, rel: str) -> dict[str, str]:
    """Copy one delivered file, or a dataset folder (Hugging Face ``save_to_disk``, Parquet/Arrow shards) file by
    file; ``{relpath: sha256}`` of every copied file, each checked against its source."""
    pairs = [(source, target, rel)] if source.is_file() else [
        (f, target / f.relative_to(source), f"{rel}/{f.relative_to(source).as_posix()}")
        for f in sorted(source.rglob("*")) if f.is_file()]
    hashes = {}
    for src, dst, key in pairs:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        hashes[key] = sha256_file(dst)
        if hashes[key] != sha256_file(src):
            raise DataError(f"{src} changed while it was being copied; copy it again when it is stable.")
    return hashes


def _check_data_file(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"Data file {path} does not exist. Check the path (relative to {Path.cwd()}).")
    if path.is_dir():
        if not any(f.is_file() for f in path.rglob("*")):
            raise DataError(f"{path} is an empty folder; pass a data file, or a dataset folder (save_to_disk, "
                            f"Parquet/Arrow shards) with its files in it.")
    elif not path.is_file():
        raise DataError(f"{path} is not a file; pass each data file (or dataset folder) with its own --data.")
    return path.resolve()


def _unique_names(sources: list[Path]) -> list[str]:
    """File names inside data/; two sources with the same name get -2, -3 suffixes instead of overwriting."""
    seen: dict[str, int] = {}
    names = []
    for source in sources:
        name = source.name
        if name in seen:
            seen[name] += 1
            name = f"{source.stem}-{seen[source.name]}{source.suffix}"
        else:
            seen[name] = 1
        names.append(name)
    return names
