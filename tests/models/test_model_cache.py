"""Cached builds are all-or-nothing and safe when two processes build at once."""
from __future__ import annotations

import json
import threading
import time

import pytest

from ftkit.models.cache import NOTE_FILE, build_cached


def builder(version, delay=0.0, payload="x"):
    def build(out):
        (out / "weights.bin").write_text(payload)
        time.sleep(delay)
        (out / NOTE_FILE).write_text(json.dumps({"builder_version": version}))
    return build


def test_interrupted_build_leaves_nothing_behind(tmp_path):
    target = tmp_path / "models" / "m"

    def crash(out):
        (out / "half.bin").write_text("partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cached(target, crash, "v1")
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert build_cached(target, builder("v1"), "v1") == target
    assert (target / "weights.bin").read_text() == "x"


def test_a_build_without_its_note_is_refused(tmp_path):
    from ftkit.errors import FtkitError

    with pytest.raises(FtkitError, match="did not complete"):
        build_cached(tmp_path / "m", lambda out: (out / "w.bin").write_text("x"), "v1")
    assert not (tmp_path / "m").exists()


def test_new_builder_version_replaces_a_stale_build(tmp_path):
    target = tmp_path / "m"
    build_cached(target, builder("v1", payload="old"), "v1")
    build_cached(target, builder("v2", payload="new"), "v2")
    assert (target / "weights.bin").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no stale or temp folders left


def test_concurrent_builds_end_with_one_complete_folder(tmp_path):
    target = tmp_path / "m"
    errors = []

    def work(payload):
        try:
            build_cached(target, builder("v1", delay=0.2, payload=payload), "v1")
        except Exception as err:  # noqa: BLE001 - the test reports any failure below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert errors == []
    assert (target / "weights.bin").read_text() in "abc"
    assert json.loads((target / NOTE_FILE).read_text())["builder_version"] == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
