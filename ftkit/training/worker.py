"""One ``accelerate launch`` worker: ``python -m ftkit.training.worker FOLDER`` (see ``ftkit.training.launch``)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from ftkit.fsutil import atomic_write_json
    from ftkit.training.launch import OUTCOME_FILE, read_job
    from ftkit.training.trainer import run_training

    folder = Path(argv[1])
    job, train_sequences, eval_sequences = read_job(folder)
    outcome = run_training(job, train_sequences, eval_sequences)
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_json(folder / OUTCOME_FILE, json.loads(json.dumps(outcome, default=str)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
