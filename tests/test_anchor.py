"""An anchor outside the engagement detects a consistent forgery that the folder itself cannot reveal."""
from __future__ import annotations

import json

import pytest

from engagement_helpers import fork_notebook
from ftkit import audit_log
from ftkit.cli import main
from ftkit.fsutil import atomic_write_json, sha256_file
from ftkit.manifest import MANIFEST_FILE, hash_tree
from ftkit.runner import run_phases

QUICK = ("from ftkit.phase_run import PhaseRun\nrun = PhaseRun.open('suitability', engagement_dir, run_dir)\n"
         "run.write_json('score.json', {'accuracy': 0.61})\nrun.finish(headline={'accuracy': 0.61})")


@pytest.fixture
def engagement(make_engagement):
    engagement = make_engagement()
    fork_notebook(engagement, "01_suitability", [QUICK])
    for _ in range(2):
        [outcome] = run_phases(engagement, ["suitability"], progress=False)
        assert outcome.succeeded, outcome.error
    return engagement


def _verify(engagement, *extra) -> int:
    return main(["verify", engagement.slug, "--root", str(engagement.root), *extra])


def _anchor(engagement, capsys, *extra) -> str:
    assert _verify(engagement, "--anchor", *extra) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"ftkit-anchor v1 client={engagement.slug} head=")
    return line


def _field(line: str, name: str) -> str:
    return next(part.split("=", 1)[1] for part in line.split() if part.startswith(name + "="))


def forge_last_run(engagement) -> None:
    """Rewrite the last run's output, its manifest and its audit entry, recomputing every hash consistently."""
    entries = audit_log.read_entries(engagement.audit_path)
    last = entries[-1]
    assert last["event"] == "run_finished"
    run_dir = engagement.runs_dir("suitability") / last["run_id"]
    atomic_write_json(run_dir / "score.json", {"accuracy": 0.97})
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text())
    manifest["outputs"] = hash_tree(run_dir, exclude={MANIFEST_FILE})
    atomic_write_json(run_dir / MANIFEST_FILE, manifest)
    last["manifest_sha256"] = sha256_file(run_dir / MANIFEST_FILE)
    last["time_utc"] = "2020-01-01T00:00:00+00:00"
    last["hash"] = audit_log.entry_hash(last)
    engagement.audit_path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def test_anchor_is_one_line_with_head_and_entry_count(engagement, capsys):
    line = _anchor(engagement, capsys)
    entries = audit_log.read_entries(engagement.audit_path)
    assert _field(line, "head") == entries[-1]["hash"] and _field(line, "entries") == str(len(entries))


def test_consistent_forgery_passes_verify_but_fails_expect_head(engagement, capsys):
    head = _field(_anchor(engagement, capsys), "head")
    forge_last_run(engagement)
    assert _verify(engagement) == 0  # from inside the folder the forgery is invisible
    capsys.readouterr()
    assert _verify(engagement, "--expect-head", head) == 1
    assert "no longer contains the anchored head" in capsys.readouterr().err


def test_expect_head_passes_when_the_chain_grew_after_the_anchor(engagement, capsys):
    head = _field(_anchor(engagement, capsys), "head")
    [outcome] = run_phases(engagement, ["suitability"], progress=False)
    assert outcome.succeeded
    assert _verify(engagement, "--expect-head", head) == 0


def test_expect_head_must_be_a_sha256(engagement, capsys):
    assert _verify(engagement, "--expect-head", "abc") == 2
    assert "64 hex digits" in capsys.readouterr().err


def test_signed_anchor_records_the_public_key_and_checks(engagement, capsys, monkeypatch):
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives.asymmetric import ed25519
    from cryptography.hazmat.primitives import serialization

    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption()).hex()
    monkeypatch.setenv("ACME_ANCHOR_KEY", raw)
    line = _anchor(engagement, capsys, "--sign-key-env", "ACME_ANCHOR_KEY")
    assert raw not in line and (engagement.path / "anchor_key.pub").is_file()
    head, sig = _field(line, "head"), _field(line, "ed25519")
    assert _verify(engagement, "--expect-head", head, "--signature", sig) == 0
    bad = ("0" if sig[0] != "0" else "1") + sig[1:]
    capsys.readouterr()
    assert _verify(engagement, "--expect-head", head, "--signature", bad) == 1
    assert "signature does not match" in capsys.readouterr().err
    other = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()).hex()
    monkeypatch.setenv("ACME_ANCHOR_KEY", other)
    assert _verify(engagement, "--anchor", "--sign-key-env", "ACME_ANCHOR_KEY") == 1  # not the engagement's key
    monkeypatch.delenv("ACME_ANCHOR_KEY")
    assert _verify(engagement, "--anchor", "--sign-key-env", "ACME_ANCHOR_KEY") == 2
