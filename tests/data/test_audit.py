"""The orchestration: leakage between train and test files, workers, token/label checks, outputs."""
from __future__ import annotations

import json

from ftkit.data.audit_files import AuditOptions, audit_files
from ftkit.data.record_checks import TaskContext

from data_helpers import chat, distinct_tickets

TASK = TaskContext("structured_output", "category")


def test_leakage_between_train_and_test_files(write_jsonl):
    train = distinct_tickets(30)
    long_text = ("my order of hiking boots arrived last tuesday with a broken sole on the left boot and a missing "
                 "lace, the box was also crushed; please send a replacement pair to the same address")
    train[7] = chat(long_text, '{"category": "shipping"}')
    test = distinct_tickets(10, start=100) + [train[3]]  # one exact copy of a training record
    test.append(chat(long_text + " thanks", '{"category": "shipping"}'))  # and one near copy
    result = audit_files([write_jsonl(train, "train.jsonl")], AuditOptions(task=TASK),
                         test_files=[write_jsonl(test, "test.jsonl")])
    leaked = {(i.code, i.line) for i in result.issues if i.code.startswith("leakage")}
    assert leaked == {("leakage.exact", 4), ("leakage.near", 8)}
    counts = result.split_counts()
    assert counts["test"] == 12 and counts["train"] + counts["validation"] == 28
    assert not {i for i in result.leaked if result.splits.get(i) in ("train", "validation")}


def test_two_workers_give_the_same_result_as_one(write_jsonl):
    records = distinct_tickets(300) + [chat("mail jane.doe@example.com please", "{}")] + distinct_tickets(2)
    path = write_jsonl(records)
    one = audit_files([path], AuditOptions(task=TASK, workers=1, chunk_size=50))
    two = audit_files([path], AuditOptions(task=TASK, workers=2, chunk_size=50))
    assert [i.to_dict() for i in one.issues] == [i.to_dict() for i in two.issues]
    assert one.splits == two.splits and (one.signatures == two.signatures).all()


def test_token_and_label_checks_with_the_tiny_tokenizer(write_jsonl, tiny_tokenizer):
    records = distinct_tickets(5) + [
        chat("tell me " + "more " * 300, "ok"),  # longer than max_seq_length
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "draft", "weight": 0}]},
        chat("this has <|im_end|> inside", '{"category": "x"}'),
    ]
    opts = AuditOptions(task=TaskContext("chat", control_tokens=tuple(tiny_tokenizer.all_special_tokens)),
                        tokenizer=tiny_tokenizer, max_seq_length=128)
    result = audit_files([write_jsonl(records)], opts)
    codes = {(i.code, i.line) for i in result.issues}
    assert ("tokens.too_long", 6) in codes and ("labels.nothing_trained", 7) in codes and ("content.control_token", 8) in codes
    good = result.metas[0]
    assert good["n_tokens"] > good["n_label_tokens"] > 0 and good["tokens_per_role"]["assistant"] > 0
    assert result.stats["tokens_per_example"]["n"] == 7  # valid records with token counts


def test_outputs_and_redacted_copy(write_jsonl, tmp_path):
    records = distinct_tickets(20) + [chat("reach me at jane.doe@example.com", '{"category": "billing"}')]
    result = audit_files([write_jsonl(records)], AuditOptions(task=TASK, redact_pii=True))
    paths = result.write_outputs(tmp_path / "run")
    assert {"train.jsonl", "validation.jsonl", "test.jsonl", "issues.csv", "stats.json"} <= set(paths)
    rows = [json.loads(line) for n in ("train", "validation", "test")
            for line in (tmp_path / "run" / f"{n}.jsonl").read_text().splitlines()]
    assert len(rows) == 21 and all(set(r) >= {"id", "messages"} for r in rows)
    assert {r["label"] for r in rows} >= {"billing", "shipping", "account"}
    redacted = "".join((tmp_path / "run" / "redacted" / f"{n}.jsonl").read_text() for n in ("train", "validation", "test"))
    assert "jane.doe" not in redacted and "[EMAIL]" in redacted
    csv_text = (tmp_path / "run" / "issues.csv").read_text()
    assert csv_text.startswith("file,line,severity,code,message,excerpt,fix") and "jane.doe" not in csv_text
