"""The complete environment of a run: what an auditor needs to rebuild it and to explain a difference.

Recorded in every ``manifest.json`` (``environment``) and as ``environment.txt`` (pinned requirements, hashed
like every output) in every run folder:

- every installed distribution with its version (the full ``importlib.metadata`` set, not a hand-picked list);
- the Python build (implementation, version, compiler, build date) and the platform (OS, kernel, libc, machine);
- the CPU model and the instruction-set flags that change floating-point results (which SIMD/FMA/bf16/AMX kernels
  oneDNN, OpenBLAS and torch pick), the core count;
- GPUs (name, memory, driver via nvidia-smi), torch's CUDA build and the cuDNN wheel's version, when present;
- the environment variables that change results (thread counts, determinism, offline mode, ...), never the value
  of one whose name looks secret;
- torch's determinism settings and thread counts as the phase kernel had them (``torch_runtime``, collected
  inside the kernel by ``PhaseRun.finish`` when torch was imported there).

Collected without importing torch (the runner process never imports it): about 50 ms, cached per process.
"""
from __future__ import annotations

import functools
import importlib.metadata as metadata
import importlib.util
import os
import platform
import re
import sys
from pathlib import Path

ENVIRONMENT_FILE = "environment.txt"

# Variables whose values change results or how they are computed. Prefixes catch families (OMP_*, CUDA_*, ...).
RESULT_VARIABLES = ("PYTHONHASHSEED", "TOKENIZERS_PARALLELISM", "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES",
                    "CUDA_LAUNCH_BLOCKING", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                    "HF_HOME", "HF_HUB_CACHE", "TZ", "LANG", "LC_ALL")
RESULT_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_", "BLIS_", "VECLIB_", "NUMEXPR_", "ONEDNN_", "DNNL_",
                   "TORCH_", "PYTORCH_", "CUDA_", "CUBLAS_", "CUDNN_", "NCCL_", "NVIDIA_TF32", "XLA_", "ACCELERATE_",
                   "TRANSFORMERS_", "HF_", "FTKIT_")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|KEY|COOKIE|SESSION", re.IGNORECASE)
NOT_RECORDED = "<set; value not recorded (secret-looking name)>"

# CPU features that select different float kernels (vector width, fused multiply-add, reduced precision).
NUMERIC_CPU_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512bw", "avx512vl",
                     "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni",
                     "asimd", "asimdhp", "sve", "sve2", "bf16", "i8mm", "fphp")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions() -> dict[str, str]:
    """{normalised name: version} of every installed distribution, as Python's import path finds them (the first
    of two copies wins, as it does for imports), sorted by name."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") if dist.metadata else None
        if name and _norm(name) not in found:
            found[_norm(name)] = dist.version
    return dict(sorted(found.items()))


def python_build() -> dict:
    number, date = platform.python_build()
    return {"implementation": platform.python_implementation(), "version": platform.python_version(),
            "build": f"{number} ({date})", "compiler": platform.python_compiler(), "executable": sys.executable,
            "prefix": sys.prefix, "hash_seed": os.environ.get("PYTHONHASHSEED", "random")}


def platform_info() -> dict:
    libc, libc_version = platform.libc_ver()
    return {"system": platform.system(), "release": platform.release(), "machine": platform.machine(),
            "libc": f"{libc} {libc_version}".strip(), "platform": platform.platform()}


def cpu_info() -> dict:
    model, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        model = platform.processor()
    return {"model": model or platform.processor(), "count": os.cpu_count(),
            "numeric_flags": [f for f in NUMERIC_CPU_FLAGS if f in flags]}


def torch_build() -> dict:
    """torch's version and CUDA/ROCm build read from ``torch/version.py`` (importing torch takes seconds)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return {}
    values = {}
    try:
        text = (Path(list(spec.submodule_search_locations)[0]) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return {}
    for key in ("__version__", "cuda", "hip", "git_version"):
        match = re.search(rf"^{key}\s*(?::\s*[^=]+)?=\s*['\"]([^'\"]*)['\"]", text, re.MULTILINE)
        values[key.strip("_")] = match.group(1) if match else None
    return {"version": values["version"], "cuda": values["cuda"], "hip": values["hip"], "git": values["git_version"]}


def cudnn_version(dists: dict[str, str]) -> str | None:
    """The cuDNN that torch loads comes from the nvidia-cudnn-cuXX wheel on pip installs."""
    return next((v for k, v in dists.items() if k.startswith("nvidia-cudnn")), None)


def result_variables(environ: dict | None = None) -> dict[str, str]:
    """The set environment variables that can change results; secret-looking names are listed without values."""
    environ = os.environ if environ is None else environ
    out = {}
    for name in sorted(environ):
        if name in RESULT_VARIABLES or name.startswith(RESULT_PREFIXES):
            out[name] = NOT_RECORDED if SECRET_NAME.search(name) else environ[name]
    return out


def torch_runtime() -> dict:
    """torch's determinism settings and thread counts in *this* process, or {} when torch is not imported here
    (never imports it). Called inside the phase kernel, where the computing happens."""
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    info = {"num_threads": torch.get_num_threads(), "num_interop_threads": torch.get_num_interop_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cuda_available": bool(torch.cuda.is_available())}
    if info["cuda_available"]:
        info["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
        info["cudnn_version"] = torch.backends.cudnn.version()
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


@functools.lru_cache(maxsize=1)
def _static() -> dict:
    dists = distributions()
    build = torch_build()
    return {"python": python_build(), "platform": platform_info(), "cpu": cpu_info(), "distributions": dists,
            "torch_build": build, "cudnn": cudnn_version(dists)}


def collect(gpus: list[dict] | None = None) -> dict:
    """The environment section of a manifest (environment variables read now; the rest cached per process)."""
    static = _static()
    return {**static, "distributions": dict(static["distributions"]), "gpus": list(gpus or []),
            "variables": result_variables()}


def requirements_text(env: dict, header: str = "") -> str:
    """``environment.txt``: one ``name==version`` line per distribution, ``pip install --no-deps -r``-ready.

    ftkit itself is a comment (an editable checkout is not on an index: install it from its commit); torch's local
    build tag (``+cpu``, ``+cu124``) is kept, so the file says which build ran (install it from PyTorch's index).
    """
    lines = [f"# {line}" for line in header.splitlines()] if header else []
    py = env.get("python", {})
    lines.append(f"# python {py.get('version', '?')} ({py.get('implementation', '?')}), "
                 f"{env.get('platform', {}).get('platform', '?')}")
    for name, version in sorted(env.get("distributions", {}).items()):
        if name == "ftkit":
            lines.append(f"# ftkit=={version} (install from its git commit, see manifest.json)")
        else:
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def parse_requirements(text: str) -> dict[str, str]:
    """{normalised name: version} of the ``name==version`` lines (comments and other lines are skipped)."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, _, version = line.partition("==")
            out[_norm(name.split("[")[0].strip())] = version.strip().split(";")[0].strip()
    return out


def compare(recorded: dict, current: dict) -> list[str]:
    """Every difference between two environment sections, one sentence each ([] = same environment)."""
    diffs = []
    old, new = recorded.get("distributions", {}), current.get("distributions", {})
    for name in sorted(set(old) | set(new)):
        if name == "ftkit":
            continue  # compared by version and git commit in the manifest's "ftkit" section
        if name not in new:
            diffs.append(f"package {name}=={old[name]} was installed then, is not now")
        elif name not in old:
            diffs.append(f"package {name}=={new[name]} is installed now, was not then")
        elif old[name] != new[name]:
            diffs.append(f"package {name}: {old[name]} then, {new[name]} now")
    for section, keys in (("python", ("implementation", "version", "build", "compiler")),
                          ("platform", ("system", "machine", "libc")), ("cpu", ("model", "numeric_flags")),
                          ("torch_build", ("version", "cuda", "hip"))):
        for key in keys:
            a, b = (recorded.get(section) or {}).get(key), (current.get(section) or {}).get(key)
            if a != b:
                diffs.append(f"{section} {key}: {a!r} then, {b!r} now")
    if [g.get("name") for g in recorded.get("gpus", [])] != [g.get("name") for g in current.get("gpus", [])]:
        diffs.append(f"GPUs: {[g.get('name') for g in recorded.get('gpus', [])]} then, "
                     f"{[g.get('name') for g in current.get('gpus', [])]} now")
    old_vars, new_vars = recorded.get("variables", {}), current.get("variables", {})
    for name in sorted(set(old_vars) | set(new_vars)):
        if old_vars.get(name) != new_vars.get(name):
            diffs.append(f"environment variable {name}: {old_vars.get(name, '(unset)')!r} then, "
                         f"{new_vars.get(name, '(unset)')!r} now")
    return diffs
