"""Keep secrets out of the evidence.

Papermill stores parameter values twice in the output notebook, so secrets are never parameters: a
parameter whose *name* looks like a key, token or password is refused (pass the name of an environment
variable instead, e.g. ``api_key_env``). After a run, every output file is scanned for the *values* of
secret-looking environment variables; a hit is redacted in place and fails the run.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ftkit.fsutil import atomic_write_bytes

# Names like OPENAI_API_KEY, HF_TOKEN, DB_PASSWORD, aws_secret_access_key: judged by their word parts, so
# max_tokens, tokenizer, label_key or PWD (the shell's working directory) are not secrets, and api_key_env (the *name* of a variable) is allowed.
_SECRET_WORDS = {"secret", "token", "password", "passwd", "credential", "credentials", "apikey", "auth",
                 "passphrase"}
_SECRET_PAIRS = {("api", "key"), ("private", "key"), ("access", "key"), ("signing", "key")}
_NAME_OF_VARIABLE = {"env", "var", "name"}  # last word: the value is a variable's name, not a secret
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would match everywhere and protect nothing
REDACTED = b"[REDACTED]"


def is_secret_name(name: str) -> bool:
    """True for parameter/variable names that look like they hold a secret.

    >>> [is_secret_name(n) for n in ("api_key", "HF_TOKEN", "api_key_env", "max_tokens", "tokenizer")]
    [True, True, False, False, False]
    """
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    if not words or words[-1] in _NAME_OF_VARIABLE:
        return False
    return any(w in _SECRET_WORDS for w in words) or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:]))


def secret_values(environ: dict | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LENGTH}


def scan_and_redact(folder: Path, environ: dict | None = None) -> list[str]:
    """Redact secret values found in files under ``folder``; return 'VAR in file' for each hit."""
    secrets = {name: value.encode("utf-8") for name, value in secret_values(environ).items()}
    if not secrets:
        return []
    hits = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        found = [name for name, value in secrets.items() if value in data]
        if not found:
            continue
        for name in found:
            data = data.replace(secrets[name], REDACTED)
            hits.append(f"the value of ${name} in {path.relative_to(folder).as_posix()}")
        # Atomic: a full disk mid-redaction leaves the file as it was (and no stray temp file), never half of it.
        atomic_write_bytes(path, data)
    return hits
