"""More than one process: ``accelerate launch`` as a subprocess (DDP), its progress streamed into the notebook.

With ``training.num_processes > 1`` the notebook does not train in its own kernel. It writes the job (settings,
plan, paths) and the tokenized sequences into a temporary folder and runs

    python -m accelerate.commands.launch --multi_gpu --num_processes N ... -m ftkit.training.worker FOLDER

(``--config_file`` instead of ``--multi_gpu`` when ``training.accelerate_config`` names an FSDP/DeepSpeed config).
accelerate starts N workers through torchrun; each runs ``ftkit.training.trainer.run_training`` on its share of
every batch. On GPUs they talk over NCCL; on CPU the worker asks for the CPU and accelerate picks gloo, which is
how the 2-process path is tested on machines without a GPU. Rank 0 prints one JSON progress line per log event
(streamed here as it comes) and writes the outcome; any failure raises PhaseFailed with the workers' last lines.
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

from ftkit.errors import FtkitError, PhaseFailed
from ftkit.training.dataset import Example
from ftkit.training.trainer import PROGRESS_PREFIX, TrainingJob, format_progress, threads_for

JOB_FILE, SEQUENCES_FILE, OUTCOME_FILE = "job.json", "sequences.json", "outcome.json"


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


def accelerate_command(num_processes: int, folder: Path, config_file: str = "") -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
           "--num_machines", "1", "--main_process_port", str(free_port())]
    if config_file:
        if not Path(config_file).is_file():
            raise FtkitError(f"training.accelerate_config: {config_file} does not exist; give the path of a file made "
                             f"with `accelerate config`, or leave it empty for plain DDP.")
        cmd += ["--config_file", config_file]
    else:
        cmd += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return cmd + ["-m", "ftkit.training.worker", str(folder)]


def _die_with_parent() -> None:
    # Linux: if the notebook kernel is killed, the launcher gets SIGTERM (torchrun then stops its workers)
    # instead of training on as an orphan that writes into the run folder.
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def launch(job: TrainingJob, train_sequences, eval_sequences, num_processes: int, config_file: str = "",
           echo=print) -> dict:
    """Run training in ``num_processes`` processes; return rank 0's outcome (same shape as run_training's)."""
    _check_devices(num_processes)
    with tempfile.TemporaryDirectory(prefix="ftkit-train-") as tmp:
        folder = Path(tmp)
        job.stream_json = True
        write_job(folder, job, train_sequences, eval_sequences)
        env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
               "OMP_NUM_THREADS": os.environ.get("FTKIT_THREADS_PER_PROCESS", str(threads_for(num_processes)))}
        cmd = accelerate_command(num_processes, folder, config_file)
        echo(f"launching {num_processes} processes: accelerate launch ... -m ftkit.training.worker")
        tail = _stream(cmd, env, job.plan["total_steps"], echo)
        outcome = folder / OUTCOME_FILE
        if tail is not None or not outcome.is_file():
            raise PhaseFailed(f"Training with {num_processes} processes (accelerate launch) failed"
                              f"{'' if tail else ' without writing its outcome'}. Last lines of the workers:\n"
                              + "".join(tail or []))
        return json.loads(outcome.read_text(encoding="utf-8"))


def _check_devices(num_processes: int) -> None:
    """One process per GPU: refuse more processes than GPUs (on CPU any number runs, sharing the cores)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and num_processes > gpus:
        raise FtkitError(f"training.num_processes is {num_processes} but this machine has {gpus} GPU(s); set it to "
                         f"{gpus} or fewer (one process per GPU).")


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
