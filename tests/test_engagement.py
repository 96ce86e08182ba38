"""Engagement folders: safe names, intake hashing, nothing created outside the root or half-made."""
from __future__ import annotations

import json

import pytest

from ftkit.engagement import Engagement, check_client_name
from ftkit.errors import DataError, FtkitError, UsageError
from ftkit.fsutil import sha256_file
from ftkit.intake import create_engagement


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".", "..", "a\x00b", "bad\nname", "with space", "-lead",
                                  "x" * 65, "con", "trailing.", "a\\b"])
def test_unsafe_client_names_are_refused(name):
    with pytest.raises(UsageError, match="not a safe folder name"):
        check_client_name(name)


@pytest.mark.parametrize("name", ["acme", "acme-bank", "Acme_2026", "a.b"])
def test_safe_names_are_accepted(name):
    assert check_client_name(name) == name


def test_new_copies_data_and_records_hashes(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"messages": []}\n')
    engagement = create_engagement("acme", [data], tmp_path / "eng", task="classification", base_model="tiny-random")
    copied = engagement.data_dir / "in.jsonl"
    assert copied.read_bytes() == data.read_bytes()
    intake = json.loads(engagement.intake_path.read_text())
    assert intake["files"] == {"data/in.jsonl": sha256_file(data)}
    text = engagement.config_path.read_text()
    assert "type: classification" in text and "# " in text  # comments survive
    audit = [json.loads(line) for line in engagement.audit_path.read_text().splitlines()]
    assert audit[0]["event"] == "engagement_created" and audit[0]["data_files"] == intake["files"]


def test_same_file_names_do_not_overwrite(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "d.jsonl").write_text("1\n")
    (tmp_path / "b" / "d.jsonl").write_text("2\n")
    engagement = create_engagement("acme", [tmp_path / "a" / "d.jsonl", tmp_path / "b" / "d.jsonl"], tmp_path / "eng")
    assert sorted(p.name for p in engagement.data_dir.iterdir()) == ["d-2.jsonl", "d.jsonl"]


def test_existing_engagement_is_not_overwritten(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("{}\n")
    create_engagement("acme", [data], tmp_path / "eng")
    with pytest.raises(FtkitError, match="already exists"):
        create_engagement("acme", [data], tmp_path / "eng")


def test_missing_data_file_leaves_nothing_behind(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        create_engagement("acme", [tmp_path / "nope.jsonl"], tmp_path / "eng")
    assert not (tmp_path / "eng" / "acme").exists()
    assert not list((tmp_path / "eng").glob(".acme*")) if (tmp_path / "eng").exists() else True


def test_traversal_name_creates_nothing_outside_root(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text("{}\n")
    with pytest.raises(UsageError):
        create_engagement("../escape", [data], tmp_path / "eng")
    assert not (tmp_path / "escape").exists()


def test_missing_engagement_says_how_to_create_it(tmp_path):
    with pytest.raises(FtkitError, match="ftkit new nobody"):
        Engagement.at("nobody", tmp_path)


def test_atomic_writes_get_the_mode_a_plain_write_would(tmp_path):
    import os
    import stat

    from ftkit.fsutil import atomic_write_text

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = atomic_write_text(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(os.stat(atomic).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
