"""Helpers of the `ftkit augment` tests (imported by name: every test folder has its own conftest.py)."""
from __future__ import annotations


def set_settings(engagement, settings: dict) -> None:
    """Write dotted settings into the engagement's engagement.yaml (comments kept)."""
    import io

    from ftkit.fsutil import atomic_write_text
    from ftkit.yamlio import round_trip

    yaml = round_trip()
    doc = yaml.load(engagement.config_path.read_text(encoding="utf-8"))
    for dotted, value in settings.items():
        *parents, leaf = dotted.split(".")
        node = doc
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    out = io.StringIO()
    yaml.dump(doc, out)
    atomic_write_text(engagement.config_path, out.getvalue())
