"""Names both steps of ``ftkit augment`` share: where runs live, the summary file, the source value, the task."""
from __future__ import annotations

FOLDER = "augmentation"  # under the engagement folder (or a data audit run): one sub-folder per run
SUMMARY = "augment.json"
SOURCE = "synthetic"  # the split records' `source` of accepted candidates


def task_context(config):
    """The data audit's record-check context from ``config.task``."""
    from ftkit.data.record_checks import TaskContext

    t = config.task
    return TaskContext(t.type, t.label_field, tuple(t.labels), dict(t.json_schema))
