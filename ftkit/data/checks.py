"""The data-check registry: every problem the audit can report, with a stable code, a severity and a fix.

An :class:`Issue` is one row of ``issues.csv``: where (file, 1-based line or record index), what (code,
message) and a masked excerpt. Codes are stable (tests, reports and clients' fix lists refer to them); the
registry is the single place that says how bad each one is and what to do about it, so the CLI, the
notebook and the data card all say the same thing.

Severities: ``error`` (the record cannot be trained on: it is left out of the splits; a file with errors
fails ``ftkit data check``), ``warning`` (usable, but worth fixing), ``info`` (worth knowing).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ftkit.errors import UsageError

ISSUE_SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Check:
    code: str
    severity: str
    title: str
    fix: str


@dataclass(frozen=True)
class Issue:
    """One finding about one record (``line`` >= 1) or a whole file (``line`` == 0).

    >>> make_issue("content.empty_assistant", 7, "message 3 (assistant) is empty").severity
    'error'
    """

    file: str
    line: int
    severity: str
    code: str
    message: str
    excerpt: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


CHECKS: dict[str, Check] = {}


def _register(code: str, severity: str, title: str, fix: str) -> None:
    if severity not in ISSUE_SEVERITIES:
        raise ValueError(f"check {code}: severity {severity!r} is not one of {ISSUE_SEVERITIES}")
    CHECKS[code] = Check(code, severity, title, fix)


# -- files ---------------------------------------------------------------------------------------------
_register("file.not_found", "error", "file not found", "Check the path; engagement data lives in the engagement's data/ folder.")
_register("file.empty", "error", "empty file", "The file has no content: export the data again.")
_register("file.binary", "error", "binary, not text", "Export the data as UTF-8 JSONL, JSON or CSV (not a spreadsheet, archive or database file).")
_register("file.encoding", "error", "not UTF-8", "Re-save the file as UTF-8 (with or without BOM).")
_register("file.not_a_list", "error", "one JSON object, not a list of records", "Save the records as a JSON array or as JSONL (one object per line).")
_register("file.unknown_format", "error", "format not recognised", "Use chat (messages), alpaca (instruction/output), sharegpt (conversations), prompt/completion or CSV, or pass --format.")
_register("file.invalid_json", "error", "JSON array cannot be parsed", "Fix the JSON at the position named (a validator such as `python -m json.tool` shows it).")
_register("file.invalid_csv", "error", "CSV cannot be parsed", "Quote fields that contain line breaks or carriage returns (any spreadsheet's CSV export does), then check the line named.")
_register("file.no_records", "error", "no usable records", "The file contains no records that could be read; see the other issues.")
_register("file.mostly_invalid", "error", "most lines are not JSON", "Is it pretty-printed JSON? Write one JSON object per line (JSONL) or a JSON array.")
_register("file.trailing_data", "warning", "data after the end of the JSON array", "Remove what follows the closing ']'.")
_register("file.compressed", "error", "compressed file cannot be decompressed", "The gzip/zstd data is damaged or truncated: compress the export again.")
_register("file.dataset_dict", "error", "a dataset with several splits", "Give one split's folder (e.g. .../train); put the test split in data.test_files.")
_register("file.columnar", "error", "Parquet/Arrow file cannot be read", "Export it again (pandas to_parquet, datasets save_to_disk) or as JSONL.")
_register("file.excel", "error", "Excel workbook needs a sheet", "Set data.sheet and data.columns.prompt/completion in engagement.yaml (ftkit data check: --sheet), or save the sheet as CSV UTF-8.")
_register("file.csv_columns", "error", "CSV columns not found", "Set data.columns.prompt/completion in engagement.yaml to the header names.")
# -- records: structure --------------------------------------------------------------------------------
_register("json.invalid", "error", "invalid JSON", "Fix the line so it is one complete JSON object (check quotes, commas, brackets).")
_register("encoding.invalid_utf8", "error", "invalid UTF-8", "Re-export the file as UTF-8; this line has bytes of another encoding.")
_register("record.too_large", "error", "record too large", "A single record should be well under 4 MiB; split it, or check the file has line breaks.")
_register("record.not_object", "error", "record is not a JSON object", "Each record must be a JSON object {...}.")
_register("record.missing_key", "error", "required key missing", "Add the key named; every record of a format needs the same keys.")
_register("record.unknown_key", "warning", "unknown key", "Remove or rename the key; it is ignored by training.")
_register("record.bad_type", "error", "value of the wrong type", "Give the key the type named (text, list, object).")
_register("message.not_object", "error", "message is not an object", "Each message must be {\"role\": ..., \"content\": ...}.")
_register("message.missing_key", "error", "message without role", "Give every message a role (system, user, assistant or tool).")
_register("message.unknown_role", "error", "unrecognised role", "Use system, user, assistant or tool (ShareGPT: system, human, gpt, function_call, observation).")
_register("message.missing_content", "error", "missing or non-string content", "Give the message text content (a string or a list of text parts).")
_register("message.unknown_key", "warning", "unknown message key", "Remove the key; it is ignored by training and by most chat templates.")
_register("message.nonstandard_part", "warning", "content part without 'text'", "Write content parts as {\"type\": \"text\", \"text\": ...}; ftkit read the text but other tools may not.")
_register("message.non_text_part", "warning", "non-text content part dropped", "Images/audio are not used for text fine-tuning; remove them or use a multimodal pipeline.")
_register("message.bad_weight", "error", "weight not 0 or 1", "Set weight to 0 (do not train on this message) or 1, on assistant messages only.")
_register("tool.bad_call", "error", "malformed tool call", "tool_calls: [{\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\": JSON text}}].")
_register("conversation.no_assistant", "error", "no assistant message", "Add the expected answer as an assistant message; without it nothing is learned.")
_register("conversation.assistant_not_last", "warning", "assistant message not last", "Drop the trailing turns or add the assistant's answer to them; they are never trained.")
_register("roles.system_not_first", "warning", "system message not first", "Put the system message first; templates may move or drop it.")
_register("roles.repeated", "warning", "same role twice in a row", "Merge consecutive messages of the same role; many chat templates reject them.")
_register("roles.first_not_user", "warning", "conversation does not open with a user turn", "Start with a user message (after an optional system message).")
# -- records: content ----------------------------------------------------------------------------------
_register("content.empty_assistant", "error", "empty answer", "Write the expected answer; an empty target teaches the model to say nothing.")
_register("content.empty", "warning", "empty message", "Fill in or remove the empty message.")
_register("content.placeholder", "warning", "unfilled template placeholder", "Replace {{placeholders}} with real values before training.")
_register("content.html", "warning", "HTML remnants", "Strip HTML tags and entities unless the model should produce HTML.")
_register("content.whitespace", "info", "leading/trailing whitespace", "Strip whitespace at the start and end of texts.")
_register("content.mojibake", "warning", "replacement characters (mojibake)", "The text went through a wrong encoding somewhere; re-export from the source.")
_register("content.control_chars", "warning", "control characters", "Remove control characters (other than newline and tab).")
_register("content.control_token", "warning", "chat-template control token in text", "Remove markers like <|im_end|> or [INST] from the text (or rewrite them so they are no marker); ftkit's training tokenises content as plain text, but other tools read them as turn boundaries.")
# -- task ----------------------------------------------------------------------------------------------
_register("answer.invalid_json", "error", "answer is not a JSON object", "structured_output: the assistant's answer must be one JSON object.")
_register("answer.missing_field", "warning", "label field missing from answer", "Add task.label_field to every answer, or fix task.label_field in engagement.yaml.")
_register("answer.schema", "error", "answer violates the JSON schema", "Fix the answer or task.json_schema so they agree.")
_register("label.unknown", "error", "label not in task.labels", "Fix the label, or add it to task.labels in engagement.yaml.")
_register("label.missing", "warning", "no label", "Give every classification example a label (the answer).")
_register("labels.nothing_trained", "error", "no assistant answer is trained on", "Give at least one assistant message weight 1 (or drop the weight key) and non-empty content; otherwise drop the example.")
_register("tokens.estimated_too_long", "warning", "probably longer than max_seq_length (estimated, no tokenizer)", "Check with the base model's tokenizer (ftkit data check --base-model ID); shorten or drop the example, or raise data.max_seq_length.")
# -- tokens (need the base model's tokenizer) ------------------------------------------------------------
_register("tokens.too_long", "warning", "longer than max_seq_length", "Raise data.max_seq_length, or shorten/drop the example; it would be truncated.")
_register("template.render_failed", "error", "chat template rejects the conversation", "Fix the conversation (e.g. role order) so the base model's chat template can render it.")
_register("labels.empty", "error", "no trainable label tokens", "Nothing would be learned from this example: check the assistant turns (weight, empty content, template).")
_register("labels.no_end_of_turn", "error", "end-of-turn token not trained", "The model would never learn to stop: fix the chat template or the truncation so each answer ends with its end-of-turn token.")
# -- duplicates and leakage ------------------------------------------------------------------------------
_register("duplicate.exact", "warning", "exact duplicate", "Remove the repeated record (the audit keeps only the first copy in the splits).")
_register("duplicate.near", "info", "near-duplicate", "Check the group; near-copies over-weight one pattern (the audit keeps a group in one split).")
_register("duplicate.conflict", "warning", "conflicting answers to the same prompt", "Decide the right answer; contradictory targets teach the model to guess.")
_register("leakage.exact", "warning", "training record also in the test file", "Remove it from the training data (the audit drops it from train).")
_register("leakage.near", "warning", "training record nearly identical to a test record", "Remove it from the training data (the audit drops it from train).")
# -- PII -------------------------------------------------------------------------------------------------
_register("pii.email", "warning", "e-mail address", "Remove or pseudonymise it, or set data.redact_pii: true.")
_register("pii.phone", "warning", "phone number", "Remove or pseudonymise it, or set data.redact_pii: true.")
_register("pii.card", "warning", "payment card number (Luhn-valid)", "Remove it; card numbers must not be in training data (PCI DSS).")
_register("pii.iban", "warning", "IBAN (checksum-valid)", "Remove or pseudonymise it, or set data.redact_pii: true.")
_register("pii.national_id", "warning", "national-ID-like number", "Remove or pseudonymise it, or set data.redact_pii: true.")
_register("pii.ip", "warning", "IP address", "Remove or pseudonymise it, or set data.redact_pii: true.")
_register("pii.api_key", "error", "API key or private key", "Remove it and have the owner rotate the key; secrets must never be trained on.")
_register("pii.credential", "warning", "password or secret assignment", "Remove the secret (and rotate it if it is real), or set data.redact_pii: true.")


def get_check(code: str) -> Check:
    try:
        return CHECKS[code]
    except KeyError:
        raise UsageError(f"Unknown data check '{code}'. Valid codes: {', '.join(sorted(CHECKS))}.") from None


def make_issue(code: str, line: int, message: str, excerpt: str = "", file: str = "") -> Issue:
    """An Issue with the registry's severity for ``code`` (unknown codes are a bug, so they raise)."""
    return Issue(file, line, get_check(code).severity, code, message, excerpt)
