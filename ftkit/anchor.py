"""An anchor outside the engagement: the audit chain's head, kept by the client.

The hash chain proves that no entry was changed *relative to the entries after it*; someone who rewrites the last
entry together with its manifest and outputs, and recomputes the hashes, leaves a folder that is consistent from
the inside. The defence is a value kept elsewhere: ``ftkit verify CLIENT --anchor`` prints one line (the head's
sha256 and the number of entries) for the client to keep (e-mail, ticket, signed minutes), and
``ftkit verify CLIENT --expect-head SHA`` fails unless the chain still passes through that entry.

Optionally the line is signed with an Ed25519 key read from an environment variable (``--sign-key-env VAR``:
the 32-byte private key as 64 hex digits, or a PEM); the public key is recorded in the engagement
(``anchor_key.pub``) so ``--expect-head SHA --signature SIG`` can check that the anchor came from the key holder.
Needs the ``cryptography`` package (``pip install "ftkit[sign]"``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ftkit.audit_log import check_chain, read_entries
from ftkit.errors import FtkitError, MissingDependency, UsageError

PUBLIC_KEY_FILE = "anchor_key.pub"
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Anchor:
    client: str
    head: str
    entries: int

    def message(self) -> str:
        """The exact text that is kept and signed."""
        return f"ftkit-anchor v1 client={self.client} head={self.head} entries={self.entries}"


def current_anchor(client: str, audit_path: Path) -> Anchor:
    """The anchor of the chain as it is now; refuses a broken chain (anchoring it would bless the damage)."""
    entries = read_entries(audit_path)
    if not entries:
        raise FtkitError(f"{audit_path} is missing or empty: there is no audit chain to anchor.")
    problems = check_chain(entries)
    if problems:
        raise FtkitError("The audit chain is broken, so it cannot be anchored: " + "; ".join(problems[:3]) +
                         ". Run `ftkit verify` and resolve this first.")
    return Anchor(client, entries[-1]["hash"], len(entries))


def check_expected_head(client: str, audit_path: Path, expected: str, signature: str = "",
                        public_key_path: Path | None = None) -> list[str]:
    """Problems ([] = the chain still extends ``expected``; with ``signature``, also that it was signed)."""
    expected = expected.strip().lower()
    if not SHA256.fullmatch(expected):
        raise UsageError(f"--expect-head {expected!r} is not a sha256 (64 hex digits); pass the head= value of "
                         f"the anchor line.")
    entries = read_entries(audit_path)
    position = next((i for i, e in enumerate(entries) if e.get("hash") == expected), None)
    if position is None:
        return [f"audit.jsonl no longer contains the anchored head {expected[:12]}...: the entry it names was "
                f"rewritten or removed, so the evidence recorded up to it may have been changed after the anchor "
                f"was taken"]
    problems = []
    if check_chain(entries[:position + 1]):
        problems.append(f"the chain up to the anchored head {expected[:12]}... (entry {position + 1}) is broken")
    if signature:
        anchor = Anchor(client, expected, position + 1)
        if not verify_signature(anchor, signature, public_key_path):
            problems.append(f"the signature does not match the anchor '{anchor.message()}' and the public key "
                            f"in {public_key_path}")
    return problems


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise MissingDependency("cryptography", "Signing or checking an audit anchor (Ed25519)",
                                'pip install "ftkit[sign]"') from None
    return serialization, ed25519


def load_private_key(variable: str):
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable or ""):
        raise UsageError(f"--sign-key-env {variable!r} is not an environment variable name.")
    value = os.environ.get(variable, "").strip()
    if not value:
        raise UsageError(f"Environment variable {variable} is not set; put the Ed25519 private key in it "
                         f"(64 hex digits or a PEM), never on the command line.")
    serialization, ed25519 = _crypto()
    try:
        if re.fullmatch(r"[0-9a-fA-F]{64}", value):
            return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(value))
        key = serialization.load_pem_private_key(value.encode(), password=None)
    except ValueError:
        key = None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(f"Environment variable {variable} does not hold an Ed25519 private key (64 hex digits "
                         f"or an unencrypted PEM).")
    return key


def _public_hex(key) -> str:
    serialization, _ = _crypto()
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def sign(anchor: Anchor, variable: str, public_key_path: Path) -> str:
    """Signature (hex) of the anchor's message; records the public key in the engagement on first use and refuses
    a different key later (the client checks anchors against one key)."""
    key = load_private_key(variable)
    public = _public_hex(key)
    if public_key_path.is_file():
        recorded = public_key_path.read_text(encoding="utf-8").strip()
        if recorded != public:
            raise FtkitError(f"The key in {variable} is not the one recorded in {public_key_path}; sign with the "
                             f"engagement's key (or move that file aside to start a new key, and tell the client).")
    else:
        from ftkit.fsutil import atomic_write_text
        atomic_write_text(public_key_path, public + "\n")
    return key.sign(anchor.message().encode("utf-8")).hex()


def verify_signature(anchor: Anchor, signature: str, public_key_path: Path | None) -> bool:
    _, ed25519 = _crypto()
    from cryptography.exceptions import InvalidSignature
    if public_key_path is None or not public_key_path.is_file():
        raise FtkitError(f"No public key is recorded ({public_key_path}); a signed anchor cannot be checked.")
    try:
        public = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_path.read_text().strip()))
        public.verify(bytes.fromhex(signature.strip()), anchor.message().encode("utf-8"))
    except (ValueError, InvalidSignature):
        return False
    return True
