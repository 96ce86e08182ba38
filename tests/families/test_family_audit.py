"""The data audit per family: the issue's failures (every record rejected on Mistral, Gemma 2 and Phi-3) are gone,
the audit renders what training renders (with task.system_prompt), and a dataset no record passes says so once."""
from __future__ import annotations

import json

import pytest

from family_models import BASE_FAMILIES, CHAT_FAMILIES

SYSTEM = "Classify the ticket. Reply with JSON only."


def _write(tmp_path, records):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _records(n=12, system=False):
    out = []
    for i in range(n):
        messages = [{"role": "user", "content": f"ticket {i}: my card was charged twice, please refund"},
                    {"role": "assistant", "content": json.dumps({"category": "billing", "n": i})}]
        out.append({"messages": ([{"role": "system", "content": SYSTEM}] if system else []) + messages})
    return out


def _audit(family_dir, name, path, system_prompt=""):
    from ftkit.chat_plan import plan_chat
    from ftkit.data.audit import AuditOptions, audit_files
    from ftkit.models.loading import load_tokenizer

    tok = load_tokenizer(str(family_dir(name)))
    plan_chat(tok)
    result = audit_files([path], AuditOptions(tokenizer=tok, system_prompt=system_prompt, scan_pii=False))
    return result, tok


@pytest.mark.parametrize("name", CHAT_FAMILIES + BASE_FAMILIES)
@pytest.mark.parametrize("own_system", [True, False], ids=["system-in-data", "task-system-prompt"])
def test_every_record_passes_the_token_checks(family_dir, tmp_path, name, own_system):
    result, _ = _audit(family_dir, name, _write(tmp_path, _records(system=own_system)),
                       system_prompt="" if own_system else SYSTEM)
    try:
        codes = {i.code for i in result.issues if i.severity == "error"}
        assert result.n_valid == result.n_records == 12, codes
        system_tokens = [m["tokens_per_role"].get("system", 0) for m in result.metas]
        if name not in ("mistral_v0_3", "gemma2"):  # folded templates count the system prompt as user text
            assert all(n > 0 for n in system_tokens)  # the engagement's system prompt was rendered, as in training
    finally:
        result.close()


def test_a_dataset_no_record_passes_says_so_once_first(family_dir, tmp_path):
    from ftkit.data.phase import files_findings

    bad = [{"messages": [{"role": "user", "content": f"a {i}"}, {"role": "user", "content": "b"},
                         {"role": "assistant", "content": "c"}]} for i in range(20)]
    result, _ = _audit(family_dir, "gemma2", _write(tmp_path, bad))
    try:
        assert result.n_valid == 0
        findings = files_findings(result)
        first = findings[0]
        assert first[0] == "blocking" and first[1] == "data.none_usable"
        assert "every record" in first[2] and "template.render_failed" in first[2] and "merge consecutive" in first[2]
        assert sum(1 for f in findings if f[1] == "data.none_usable") == 1
    finally:
        result.close()
