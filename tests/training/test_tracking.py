"""Experiment tracking for real: train the tiny model with report_to tensorboard / mlflow and read back what was
logged (TensorBoard's own event-file reader; MLflow's client on the SQLite store in the run folder)."""
from __future__ import annotations

import json

import pytest

from ftkit.config import TrainingSettings
from ftkit.training.packing import build_sequences
from ftkit.training.settings import plan_steps, resolve_settings
from ftkit.training.trainer import TrainingJob, run_training


def _train(tiny_model_dir, tiny_examples, eot_id, tmp_path, report_to: str, run_name: str = ""):
    run_dir = tmp_path / "engagements" / "acme" / "phases" / "04_training" / "runs" / "20261201-0900-ab12"
    run_dir.mkdir(parents=True)
    settings = resolve_settings(TrainingSettings(max_steps=4, batch_size=2, eval_steps=2, early_stopping_patience=0,
                                                 report_to=report_to), 256)
    train = build_sequences(tiny_examples[:32], 256, True, 0)
    evals = build_sequences(tiny_examples[48:56], 256, True, 0)
    job = TrainingJob(str(tiny_model_dir), settings.to_dict(), plan_steps(settings, len(train)).to_dict(),
                      str(run_dir), "fp", eot_id, progress=False, run_name=run_name)
    return run_dir, run_training(job, train, evals)


def _logged(run_dir):
    """ftkit's own metrics log: {step: entry} for training-loss and validation-loss lines."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}, {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r}


def test_tensorboard_event_files_in_the_run_folder_hold_the_losses(tiny_model_dir, tiny_examples, eot_id, tmp_path):
    pytest.importorskip("tensorboard", reason='report_to: tensorboard needs the tracking extra: pip install "ftkit[tracking]"')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, outcome = _train(tiny_model_dir, tiny_examples, eot_id, tmp_path, "tensorboard")  # name from the folder
    assert outcome["tracking"] == {"report_to": "tensorboard", "logging_dir": str(run_dir / "logs"),
                                   "run_name": "acme-20261201-0900-ab12"}
    events = EventAccumulator(str(run_dir / "logs")).Reload()
    train_loss, eval_loss = _logged(run_dir)
    logged_train = {e.step: e.value for e in events.Scalars("train/loss")}
    logged_eval = {e.step: e.value for e in events.Scalars("eval/loss")}
    assert logged_train.keys() == train_loss.keys() and logged_eval.keys() == eval_loss.keys() == {0, 2, 4}
    assert all(abs(logged_train[s] - train_loss[s]) < 1e-5 for s in train_loss)
    assert all(abs(logged_eval[s] - eval_loss[s]) < 1e-5 for s in eval_loss)
    # the run name is what the TensorBoard text panel shows for the run's arguments
    assert "acme-20261201-0900-ab12" in events.Tensors("args/text_summary")[0].tensor_proto.string_val[0].decode()
    assert not (run_dir / "checkpoints" / "runs").exists()  # not under checkpoints/, which is removed after success


def test_mlflow_sqlite_store_in_the_run_folder_holds_the_run(tiny_model_dir, tiny_examples, eot_id, tmp_path,
                                                             monkeypatch):
    pytest.importorskip("mlflow", reason='report_to: mlflow needs the tracking extra: pip install "ftkit[tracking]"')
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # nothing may be written to the working directory
    run_dir, outcome = _train(tiny_model_dir, tiny_examples, eot_id, tmp_path, "mlflow", "acme-20261201-0900-ab12")
    uri = f"sqlite:///{run_dir / 'logs' / 'mlflow.db'}"
    assert outcome["tracking"] == {"report_to": "mlflow", "tracking_uri": uri, "experiment": "ftkit-acme",
                                   "run_name": "acme-20261201-0900-ab12"}
    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("ftkit-acme").experiment_id])
    assert run.info.run_name == "acme-20261201-0900-ab12" and run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.0002" and run.data.params["max_steps"] == "4"
    train_loss, eval_loss = _logged(run_dir)
    history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "loss")}
    evals = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "eval_loss")}
    assert history.keys() == train_loss.keys() and evals.keys() == {0, 2, 4}
    assert all(abs(history[s] - train_loss[s]) < 1e-5 for s in train_loss)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engagements"]  # no ./mlruns or ./mlartifacts
