"""Provenance of a run: ``manifest.json``.

What an auditor needs to reproduce or challenge a result: run id, phase, times, status, parameters,
sha256 of every input and output, ftkit version and git commit, Python and key package versions,
interpreter path, hardware, seeds and the base model's identity. Collected without importing torch
(package versions come from installed metadata; GPUs from nvidia-smi when present).
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import ftkit
from ftkit import environment
from ftkit.fsutil import sha256_file

# ftkit's declared dependencies (pyproject.toml; a test keeps the two equal) plus optional ones that change what
# runs: the short table reports show. The complete set of installed distributions is in "environment".
KEY_PACKAGES = ("torch", "transformers", "tokenizers", "huggingface-hub", "peft", "accelerate", "gguf", "numpy",
                "scipy", "tqdm", "papermill", "nbclient", "nbconvert", "nbformat", "ipykernel", "ipython",
                "ipywidgets", "jupyterlab", "matplotlib", "jinja2", "ruamel.yaml", "fastjsonschema", "filelock",
                "sacrebleu", "rouge-score", "psutil", "bitsandbytes", "safetensors", "cryptography",
                "phonenumbers", "python-stdnum", "pyarrow", "zstandard", "openpyxl", "cleanlab")
MANIFEST_FILE = "manifest.json"


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.lru_cache(maxsize=1)
def ftkit_git_commit() -> str:
    """The commit of the ftkit checkout in use, with '+dirty' if it has local changes; '' for a wheel."""
    source = Path(ftkit.__file__).resolve().parent.parent
    if not (source / ".git").exists() or not shutil.which("git"):
        return ""
    try:
        commit = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if commit and dirty else "")


@functools.lru_cache(maxsize=1)
def hardware() -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(), "processor": _cpu_model(),
            "cpu_count": os.cpu_count(), "memory_gb": _memory_gb(), "gpus": _gpus()}
    info["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gb() -> float | None:
    try:
        import psutil
        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


@functools.lru_cache(maxsize=1)
def _gpus() -> list[dict]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3:
            gpus.append({"name": parts[0], "memory": parts[1], "driver": parts[2]})
    return gpus


def hash_tree(folder: Path, exclude: set[str]) -> dict[str, str]:
    """sha256 of every file under ``folder`` (relative '/' paths), skipping names in ``exclude``."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in exclude and not path.name.endswith(".tmp"):
            hashes[path.relative_to(folder).as_posix()] = sha256_file(path)
    return hashes


def build_manifest(*, run_id: str, phase: str, client: str, status: str, started_utc: str, finished_utc: str,
                   duration_s: float, parameters: dict, inputs: dict, run_dir: Path, notebook_source: Path,
                   kernel_name: str, provenance: dict, error: str = "") -> dict:
    return {
        "manifest_version": 2,  # 2: adds "environment" (complete environment; environment.txt)
        "run_id": run_id,
        "phase": phase,
        "client": client,
        "status": status,
        "error": error,
        "started_utc": started_utc,
        "finished_utc": finished_utc,
        "duration_s": round(duration_s, 2),
        "parameters": parameters,
        "inputs": inputs,
        "outputs": hash_tree(run_dir, exclude={MANIFEST_FILE}),
        "notebook": {"source": str(notebook_source), "sha256": sha256_file(notebook_source)},
        "ftkit": {"version": ftkit.__version__, "git_commit": ftkit_git_commit()},
        "python": {"version": platform.python_version(), "executable": sys.executable, "kernel": kernel_name},
        "packages": package_versions(),
        "hardware": hardware(),
        "environment": {**environment.collect(gpus=_gpus()), "torch_runtime": provenance.get("torch", {})},
        "seeds": provenance.get("seeds", {}),
        "base_model": provenance.get("base_model", {}),
    }


def write_environment_file(run_dir: Path, run_id: str, phase: str) -> Path:
    """``environment.txt``: the run's complete environment as pinned requirements (see ftkit.environment)."""
    from ftkit.fsutil import atomic_write_text

    header = (f"Environment of ftkit run {run_id} (phase {phase}); ftkit {ftkit.__version__} {ftkit_git_commit()}\n"
              f"Recreate: pip install --no-deps -r environment.txt  (torch: take this build from "
              f"https://download.pytorch.org/whl/ if PyPI lacks it)")
    return atomic_write_text(Path(run_dir) / environment.ENVIRONMENT_FILE,
                             environment.requirements_text(environment.collect(), header))
