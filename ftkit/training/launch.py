"""More than one process: ``accelerate launch`` as a subprocess, its progress streamed into the notebook.

With ``training.distributed`` other than ``none`` the notebook does not train in its own kernel. It writes the
job (settings, plan, paths) and the tokenized sequences into a job folder, the run's accelerate config into
``accelerate_config.yaml`` (see ``ftkit.training.distributed``), and runs

    python -m accelerate.commands.launch --config_file accelerate_config.yaml --num_processes N ... \
        -m ftkit.training.worker JOB_FOLDER

accelerate starts the workers through torchrun; each runs ``ftkit.training.trainer.run_training`` on its share
of every batch. On GPUs they talk over NCCL; on CPU each worker asks for the CPU and accelerate picks gloo, which
is how the 2-process DDP and FSDP paths are tested on machines without a GPU. Rank 0 prints one JSON progress
line per log event (streamed here as it comes) and writes the outcome; any failure raises PhaseFailed with the
workers' last lines. Several machines: the job folder is ``launch/`` in the run folder, with one launch script
per node beside it; this machine runs its own node's command and the others are started from their scripts.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from ftkit.errors import PhaseFailed
from ftkit.training.dataset import Example
from ftkit.training.trainer import PROGRESS_PREFIX, TrainingJob, format_progress, threads_for

JOB_FILE, SEQUENCES_FILE, OUTCOME_FILE = "job.json", "sequences.json", "outcome.json"
SCRIPT_ENV = ("PYTHONPATH", "HF_HOME", "HF_HUB_OFFLINE", "OMP_WAIT_POLICY")  # copied into node scripts when set


def write_job(folder: Path, job: TrainingJob, train_sequences, eval_sequences) -> None:
    (folder / JOB_FILE).write_text(job.to_json(), encoding="utf-8")
    pack = lambda seqs: [[[e.id, e.input_ids, e.labels] for e in seq] for seq in seqs]  # noqa: E731
    (folder / SEQUENCES_FILE).write_text(json.dumps({"train": pack(train_sequences), "eval": pack(eval_sequences)}),
                                         encoding="utf-8")


def read_job(folder: Path) -> tuple[TrainingJob, list, list]:
    job = TrainingJob.from_json((folder / JOB_FILE).read_text(encoding="utf-8"))
    data = json.loads((folder / SEQUENCES_FILE).read_text(encoding="utf-8"))
    unpack = lambda seqs: [[Example(i, ids, labels) for i, ids, labels in seq] for seq in seqs]  # noqa: E731
    return job, unpack(data["train"]), unpack(data["eval"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: if the notebook kernel is killed, the launcher gets SIGTERM (torchrun then stops its workers)
    # instead of training on as an orphan that writes into the run folder.
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def mixed_precision(device: str) -> str:
    """accelerate's mixed_precision for the launcher: what the Trainer itself uses (see trainer.training_arguments)."""
    if device != "cuda":
        return "no"
    import torch

    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launch(job: TrainingJob, train_sequences, eval_sequences, plan, echo=print) -> dict:
    """Run training as ``plan`` (a ``distributed.LaunchPlan``) says; return rank 0's outcome (run_training's shape,
    plus ``launch``: the plan, the command, the config file and the node scripts)."""
    from ftkit.training import distributed as dist

    gpus = visible_gpus()
    for warning in dist.check_plan(plan, gpus):
        echo(f"note: {warning}")
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = _config_file(plan, job, run_dir, gpus)
    port = plan.main_process_port or (free_port() if plan.num_machines == 1 else dist.DEFAULT_PORT)
    job.stream_json = True
    forced = {"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
              "OMP_NUM_THREADS": os.environ.get("FTKIT_THREADS_PER_PROCESS", str(threads_for(plan.processes_per_machine)))}
    # what a node script exports: the above, and where this ftkit and the model cache come from when set here
    env = {"OMP_WAIT_POLICY": "PASSIVE", **{k: os.environ[k] for k in SCRIPT_ENV if k in os.environ}, **forced}
    with tempfile.TemporaryDirectory(prefix="ftkit-train-") as tmp:
        # several machines: the job must be where every node sees it, i.e. in the (shared) run folder
        folder = run_dir / "launch" if plan.num_machines > 1 else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        write_job(folder, job, train_sequences, eval_sequences)
        cmd = dist.launch_arguments(plan, config_file, folder, port)
        record = {"plan": plan.to_dict(), "config_file": str(config_file), "command": cmd, "node_scripts": []}
        if plan.num_machines > 1:
            scripts = dist.write_node_scripts(plan, config_file, folder, port, folder, env)
            record["node_scripts"] = [str(n.path) for n in scripts]
            others = [str(n.path) for n in scripts if n.rank != plan.machine_rank]
            echo(f"{plan.num_machines} machines: this is machine {plan.machine_rank}; start on each other machine "
                 f"its script now (same path, shared filesystem): {', '.join(others)}")
        echo(f"launching {plan.world_size} {plan.mode} processes ({plan.processes_per_machine} here): "
             f"accelerate launch --config_file {config_file.name} ... -m ftkit.training.worker")
        tail = _stream(cmd, {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, **forced}, job.plan["total_steps"], echo)
        outcome = folder / OUTCOME_FILE
        if tail is not None or not outcome.is_file():
            raise PhaseFailed(f"Training with {plan.world_size} processes ({plan.mode}, accelerate launch) failed"
                              f"{'' if tail else ' without writing its outcome'}. Last lines of the workers:\n"
                              + "".join(tail or []))
        result = json.loads(outcome.read_text(encoding="utf-8"))
        if plan.num_machines > 1:  # the sequences are large and already hashed as the splits they came from
            (folder / SEQUENCES_FILE).unlink(missing_ok=True)
        return {**result, "launch": record}


def _config_file(plan, job: TrainingJob, run_dir: Path, gpus: int) -> Path:
    """The user's own accelerate config (checked), or ftkit's for this mode written into the run folder."""
    from ftkit.training import distributed as dist

    if plan.user_config:
        dist.check_user_config(plan)
        return Path(plan.user_config)
    config, template = dist.accelerate_config(plan, job.model_path, mixed_precision("cuda" if gpus else "cpu"),
                                              job.settings["gradient_accumulation_steps"])
    return dist.write_accelerate_config(run_dir / dist.CONFIG_NAME, config, template)


def _stream(cmd: list[str], env: dict, max_steps: int, echo) -> list[str] | None:
    """Run ``cmd``, echoing progress lines as they come; None on success, else the last 40 lines."""
    tail: deque[str] = deque(maxlen=40)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
        for line in proc.stdout:
            if line.startswith(PROGRESS_PREFIX):
                echo(format_progress(json.loads(line[len(PROGRESS_PREFIX):]), max_steps))
            else:
                tail.append(line)
        code = proc.wait()
    except BaseException:  # Ctrl-C / a cell timeout: do not leave workers training in the background
        proc.terminate()
        proc.wait(timeout=30)
        raise
    return None if code == 0 else list(tail)
