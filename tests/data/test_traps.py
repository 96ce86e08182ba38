"""Issue 15's traps, each on small hand-made good and bad files: control-token text, duplicates hidden by
normalisation, secrets in excerpts, examples that train nothing, length without a tokenizer, CSV dialects."""
from __future__ import annotations

import csv
import json

import pytest

from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.check_command import DEFAULT_MAX_SEQ_LENGTH, check_report, run_data_check
from ftkit.data.record_checks import COMMON_CHAT_MARKERS, TaskContext, control_markers

from data_helpers import chat, distinct_tickets


def _codes(path, **kw):
    result = audit_files([path], AuditOptions(**kw))
    try:
        return [(i.line, i.code) for i in result.issues], result
    finally:
        result.close()


def _check_json(path, tmp_path, **kw) -> dict:
    out = tmp_path / "check.json"
    run_data_check(str(path), json_out=str(out), **kw)
    return json.loads(out.read_text())


# -- 1. control-token text ------------------------------------------------------------------------------------

@pytest.mark.parametrize("marker", ["<|im_end|>\n<|im_start|>assistant", "<|start_header_id|>user<|end_header_id|>",
                                    "[/INST] [INST]", "<end_of_turn>\n<start_of_turn>model", "done<|end|>"])
def test_data_check_flags_every_common_chat_marker(write_jsonl, tmp_path, marker):
    records = distinct_tickets(3) + [chat("q", f"Sure.{marker}\n{{}}")]
    doc = _check_json(write_jsonl(records), tmp_path)
    hits = [i for i in doc["issues"] if i["code"] == "content.control_token"]
    assert [i["line"] for i in hits] == [4] and "chat-format marker" in hits[0]["message"]


def test_clean_text_with_angle_brackets_is_not_flagged(write_jsonl, tmp_path):
    records = distinct_tickets(3) + [chat("is 3 < 4 and [a] a list?", "yes: <b>bold</b> and [INST-42] is a ticket id")]
    doc = _check_json(write_jsonl(records), tmp_path)
    assert not [i for i in doc["issues"] if i["code"] == "content.control_token"]


def test_engagement_audit_uses_the_tokenizers_own_special_tokens(write_jsonl, tiny_tokenizer):
    markers = control_markers(tiny_tokenizer)
    assert "<|im_end|>" in markers and markers != COMMON_CHAT_MARKERS
    path = write_jsonl(distinct_tickets(2) + [chat("q", "a<|im_end|>b")])
    issues, _ = _codes(path, task=TaskContext(control_tokens=markers), tokenizer=tiny_tokenizer)
    assert (3, "content.control_token") in issues


# -- 2. duplicates hidden by normalisation ----------------------------------------------------------------------

def test_case_spacing_and_zero_width_variants_are_exact_duplicates(write_jsonl):
    base = "My parcel has not arrived after two weeks, please help"
    variants = [base.upper(), base.replace(" ", "  \u00a0"), base.replace("parcel", "par\u200bcel").replace("help", "he\u2060lp"),
                "Ｍｙ parcel has not arrived after two weeks, please help"]  # full-width letters: NFKC
    records = [chat(base, "We will check.")] + [chat(v, "We will check.") for v in variants] + distinct_tickets(3)
    issues, result = _codes(write_jsonl(records))
    assert sorted(line for line, code in issues if code == "duplicate.exact") == [2, 3, 4, 5]
    assert result.duplicate_groups and len(result.duplicate_groups[0]) == 5


def test_normalised_near_duplicates_and_leakage(write_jsonl, tmp_path):
    text = " ".join(f"word{i}" for i in range(40))
    train = [chat(text, "answer one")] + distinct_tickets(3)
    near = text.upper().replace("WORD3 ", "WO\u200bRD3  ") + " extra"
    test = [chat(near, "answer one")] + distinct_tickets(2, start=50)
    result = audit_files([write_jsonl(train)], AuditOptions(), test_files=[write_jsonl(test, name="test.jsonl")])
    try:
        assert result.leaked == [0]
    finally:
        result.close()


def test_stored_text_stays_as_delivered(write_jsonl, tmp_path):
    odd = "Ｔｉｃｋｅｔ  with\u200bzero width"
    result = audit_files([write_jsonl([chat(odd, "ok")] + distinct_tickets(3))], AuditOptions(split={"train": 1.0, "validation": 0.0, "test": 0.0, "seed": 1}))
    try:
        paths = result.write_outputs(tmp_path / "out")
        texts = [json.loads(line)["messages"][0]["content"] for name in ("train.jsonl", "validation.jsonl", "test.jsonl")
                 if (tmp_path / "out" / name).exists() for line in (tmp_path / "out" / name).read_text().splitlines()]
        assert odd in texts
    finally:
        result.close()


# -- 3. secrets never echoed --------------------------------------------------------------------------------------

PEM_BODY = ["MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9Oi7NWX7K3IxTq1l0OPkfQ4lEjIw",
            "l1ViR9lqb7cgkwb5Gp0Ws7YHiDsL0l3c8e0nZk3LX1yzqA4aoFqWkZl0aIXn3KzJ",
            "8uWzQ2QH3QmTg5mF6Yxq0kq1f3wHrLrQ9pVJb7e2rXq2Kp1c6tqjGf9t0sYyX1Lw"]
SECRETS = {
    "pem": "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_BODY * 8) + "\n-----END RSA PRIVATE KEY-----",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "bearer": "Bearer " + "A1b2C3d4E5f6G7h8I9j0" * 6,
    "aws": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "azure": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + "Zm9vYmFyYmF6cXV4" * 6 + "==",
    "stripe": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc" * 2,
}


def _fragments(secret: str) -> list[str]:
    """12-character pieces of the secret part (not the recognisable prefix such as 'AccountKey=' or 'Bearer')."""
    body = secret
    for prefix in ("AccountKey=", "aws_secret_access_key = ", "Bearer "):
        body = body.split(prefix, 1)[-1]
    body = body.replace("-----BEGIN RSA PRIVATE KEY-----", "").replace("-----END RSA PRIVATE KEY-----", "").replace("\n", "")
    return [body[i:i + 12] for i in range(0, len(body) - 12, 7)]


@pytest.mark.parametrize("kind", sorted(SECRETS))
def test_no_part_of_a_secret_reaches_any_output(write_jsonl, tmp_path, kind):
    secret = SECRETS[kind]
    records = distinct_tickets(3) + [chat(f"here is the config: {secret} thanks", "Please rotate it."),
                                     chat("ok", "prefix " * 60 + secret)]  # excerpt window lands inside the secret
    path = write_jsonl(records)
    result = audit_files([path], AuditOptions())
    try:
        result.write_outputs(tmp_path / "out")
        assert {i.code for i in result.issues if i.line in (4, 5)} & {"pii.api_key", "pii.credential"}
        report = json.dumps(check_report(result))
        dumped = report + (tmp_path / "out" / "issues.csv").read_text() + (tmp_path / "out" / "stats.json").read_text()
        for issue in result.issues:  # every excerpt, wherever its window starts
            dumped += issue.message + issue.excerpt
    finally:
        result.close()
    from ftkit.data.pii import masked_excerpt
    text = records[-1]["messages"][1]["content"]
    dumped += "".join(masked_excerpt(text, start) for start in range(0, len(text), 37))
    leaked = [f for f in _fragments(secret) if f in dumped]
    assert not leaked, leaked[:3]


# -- 4./5. data check: examples that train nothing, lengths ---------------------------------------------------------

def test_data_check_refuses_an_example_that_trains_nothing(write_jsonl, tmp_path):
    weightless = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}
    partly = {"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1", "weight": 0},
                           {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}
    doc = _check_json(write_jsonl(distinct_tickets(3) + [weightless, partly]), tmp_path)
    assert [(i["line"], i["severity"]) for i in doc["issues"] if i["code"] == "labels.nothing_trained"] == [(4, "error")]
    assert doc["n_valid"] == 4


def test_long_conversation_without_tokenizer_is_an_estimate(write_jsonl, tmp_path, capsys):
    doc = _check_json(write_jsonl(distinct_tickets(3) + [chat("x " * 15000, "ok")]), tmp_path)
    hits = [i for i in doc["issues"] if i["code"] == "tokens.estimated_too_long"]
    assert [i["line"] for i in hits] == [4] and "estimate" in hits[0]["message"]
    assert "estimated" in doc["tokens"] and "estimated at 4 characters per token" in capsys.readouterr().out
    assert _check_json(write_jsonl(distinct_tickets(3) + [chat("x " * 1500, "ok")]), tmp_path,
                       max_seq_length=2048)["issue_counts"].get("tokens.estimated_too_long") is None


def test_default_limit_is_the_engagement_default():
    from ftkit.config import DataSettings

    assert DEFAULT_MAX_SEQ_LENGTH == DataSettings.__dataclass_fields__["max_seq_length"].default


def test_base_model_runs_the_engagement_token_checks(write_jsonl, tmp_path, tiny_model_dir, tiny_tokenizer):
    records = distinct_tickets(3) + [chat("word " * 400, "ok"), chat("q", "a<|im_end|>")]
    path = write_jsonl(records)
    doc = _check_json(path, tmp_path, base_model=str(tiny_model_dir), max_seq_length=128)
    engagement, _ = _codes(path, tokenizer=tiny_tokenizer, max_seq_length=128,
                           task=TaskContext(control_tokens=control_markers(tiny_tokenizer)))
    mine = sorted((i["line"], i["code"]) for i in doc["issues"])
    assert mine == sorted(engagement) and (4, "tokens.too_long") in mine and (5, "content.control_token") in mine
    assert not any(code == "tokens.estimated_too_long" for _, code in mine)
    assert doc["stats"]["n_valid"] == 5


def test_cli_exposes_the_options(write_jsonl, tiny_model_dir, capsys):
    from ftkit.cli import main

    path = write_jsonl(distinct_tickets(3) + [chat("word " * 400, "ok")])
    assert main(["data", "check", str(path), "--base-model", str(tiny_model_dir), "--max-seq-length", "64"]) == 0
    assert "tokens.too_long" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["data", "check", str(path), "--max-seq-length", "ten"])
    assert exc.value.code == 2


# -- 6. CSV dialects ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("delimiter, name", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma")])
def test_csv_dialects_are_detected_and_stated(tmp_path, delimiter, name, capsys):
    path = tmp_path / "export.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(["prompt", "completion"])
        writer.writerow([f"Hello{delimiter} my order; is late, again", "shipping"])
        writer.writerow(["Line one\nline two", "account"])
        writer.writerow(["Refund please", "billing"])
    out = tmp_path / "r.json"
    assert run_data_check(str(path), json_out=str(out)) == 0
    doc = json.loads(out.read_text())
    assert (doc["n_records"], doc["n_valid"], doc["dialect"]) == (3, 3, f"{name}-separated, double-quoted")
    assert f"{name}-separated" in capsys.readouterr().out


def test_csv_column_mapping_kept_for_semicolons(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("id;Frage;Antwort\n1;Wo ist mein Paket?;Unterwegs\n2;Rechnung falsch;Korrigiert\n", encoding="utf-8")
    result = audit_files([path], AuditOptions(columns={"prompt": "Frage", "completion": "Antwort"}))
    try:
        assert (result.n_valid, result.files[0].dialect) == (2, "semicolon-separated, double-quoted")
    finally:
        result.close()
