"""The formats clients deliver: gzip/zstd JSONL, Parquet, Arrow (file and stream), Hugging Face save_to_disk
folders, folders of shards, Excel with an explicit sheet. Every format gives the same records, the same line
numbers in its messages, and the normalised chat records."""
from __future__ import annotations

import gzip
import json

import pytest

from ftkit.data.audit_files import AuditOptions, audit_files

from data_helpers import chat, distinct_tickets


def _records() -> list[dict]:
    recs = distinct_tickets(4)
    recs.insert(2, {"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]})  # record 3: bad
    recs.append({"messages": [{"role": "user", "content": "q5"}, {"role": "assistant", "content": "a5", "weight": 0},
                              {"role": "user", "content": "q6"}, {"role": "assistant", "content": "a6"}]})
    return recs


def _summary(path, **kw):
    result = audit_files([path], AuditOptions(**kw))
    try:
        issues = sorted((i.line, i.code) for i in result.issues)
        result.spool.seek(0)
        records = [json.loads(line)["messages"] for line in result.spool.read().decode("utf-8").splitlines()]
        return result.files[0], result.n_records, result.n_valid, issues, records
    finally:
        result.close()


def _jsonl_bytes(recs) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in recs).encode()


def _writers():
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    def parquet(path, recs):
        pq.write_table(pa.Table.from_pylist(recs), path, row_group_size=2)  # several row groups

    def arrow_file(path, recs):
        table = pa.Table.from_pylist(recs)
        with pa.ipc.new_file(str(path), table.schema) as w:
            w.write_table(table, max_chunksize=2)

    def arrow_stream(path, recs):
        table = pa.Table.from_pylist(recs)
        with pa.ipc.new_stream(str(path), table.schema) as w:
            w.write_table(table)

    def gz(path, recs):
        path.write_bytes(gzip.compress(_jsonl_bytes(recs)))

    def zst(path, recs):
        zstandard = pytest.importorskip("zstandard")
        path.write_bytes(zstandard.ZstdCompressor().compress(_jsonl_bytes(recs)))

    return {"data.parquet": parquet, "data.arrow": arrow_file, "stream.arrow": arrow_stream, "data.jsonl.gz": gz,
            "data.jsonl.zst": zst}


@pytest.mark.parametrize("name", ["data.parquet", "data.arrow", "stream.arrow", "data.jsonl.gz", "data.jsonl.zst"])
def test_every_format_reads_the_same_records_with_the_same_numbers(tmp_path, name):
    recs = _records()
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(_jsonl_bytes(recs))
    path = tmp_path / name
    _writers()[name](path, recs)
    want = _summary(plain)
    got = _summary(path)
    assert (got[1], got[2]) == (want[1], want[2]) == (6, 5)
    assert got[3] == want[3] and (3, "message.unknown_role") in got[3]  # record 3 is named record 3 everywhere
    assert got[4] == want[4] and len(got[4]) == 5  # the same normalised chat records for later phases
    assert got[0].container in ("parquet", "arrow", "jsonl")


def test_columnar_nulls_are_absent_keys_not_bad_values(tmp_path):
    """Parquet's schema is the union of rows: a message without 'weight' reads back as weight=None."""
    path = tmp_path / "data.parquet"
    _writers()["data.parquet"](path, _records())
    _, _, _, issues, _ = _summary(path)
    assert not [c for _, c in issues if c in ("message.bad_weight", "message.unknown_key")]


def test_hf_save_to_disk_folder_and_dataset_dict(tmp_path):
    datasets = pytest.importorskip("datasets")
    recs = _records()
    folder = tmp_path / "ds"
    datasets.Dataset.from_list(recs).save_to_disk(str(folder), max_shard_size="1KB")
    summary, n, n_valid, issues, _ = _summary(folder)
    assert (summary.container, n, n_valid) == ("dataset_folder", 6, 5)
    assert (3, "message.unknown_role") in issues and "shard" in summary.dialect
    both = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(recs), "test": datasets.Dataset.from_list(recs[:2])}).save_to_disk(str(both))
    summary, _, _, issues, _ = _summary(both)
    assert issues[0][1] == "file.dataset_dict" and not summary.readable


def test_folder_of_parquet_shards_numbers_rows_across_shards(tmp_path):
    recs = _records()
    folder = tmp_path / "export"
    folder.mkdir()
    _writers()["data.parquet"](folder / "part-0.parquet", recs[:2])
    _writers()["data.parquet"](folder / "part-1.parquet", recs[2:])
    _, n, _, issues, _ = _summary(folder)
    assert n == 6 and (3, "message.unknown_role") in issues


def _xlsx(path, rows, sheet="Tickets"):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    book.create_sheet("Notes").append(["not data"])
    book.save(path)


def test_xlsx_with_sheet_and_column_mapping(tmp_path):
    path = tmp_path / "tickets.xlsx"
    _xlsx(path, [["ID", "Ticket", "Category"], [1, "Parcel late", "shipping"], [None, None, None],
                 [3, "Charged twice", "billing"], [4, "Login fails", None]])
    summary, n, n_valid, issues, _ = _summary(path, sheet="Tickets", columns={"prompt": "Ticket", "completion": "Category"})
    assert (summary.container, summary.dialect, n, n_valid) == ("xlsx", "sheet 'Tickets'", 3, 2)
    assert (5, "content.empty_assistant") in issues  # the sheet row number, header = row 1, blank row 3 skipped


def test_xlsx_without_sheet_or_with_a_wrong_one_is_one_line(tmp_path):
    path = tmp_path / "tickets.xlsx"
    _xlsx(path, [["prompt", "completion"], ["a", "b"]])
    _, _, _, issues, _ = _summary(path)
    assert issues[0][1] == "file.excel"
    result = audit_files([path], AuditOptions(sheet="Sheet9"))
    try:
        message = result.issues[0].message
        assert "Sheet9" in message and "Tickets" in message and "\n" not in message
    finally:
        result.close()


def test_excel_setting_is_in_the_config_and_template():
    from ftkit.config import DataSettings
    from ftkit.resources import templates_dir

    assert DataSettings().sheet == ""
    assert "\n  sheet: \"\"" in (templates_dir() / "engagement.yaml").read_text()


def test_an_engagement_takes_a_dataset_folder_hashed_file_by_file(tmp_path):
    """`ftkit new --data FOLDER` (Parquet shards, save_to_disk): every file is hashed at intake and recorded as
    an input of the audit, which reads the folder as one data source; verify catches a changed shard."""
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    from engagement_helpers import sample_records
    from ftkit.demo_data import DEMO_SETTINGS
    from ftkit.intake import create_engagement
    from ftkit.runner import run_phases
    from ftkit.verify import verify_engagement

    recs = [{"messages": json.dumps(r["messages"])} for r in sample_records(150)]
    folder = tmp_path / "export"
    folder.mkdir()
    for i in range(2):
        part = [json.loads(r["messages"]) for r in recs[i * 75:(i + 1) * 75]]
        pq.write_table(pa.Table.from_pylist([{"messages": m} for m in part]), folder / f"part-{i}.parquet")
    eng = create_engagement("shards", [folder], tmp_path / "engagements", settings=dict(DEMO_SETTINGS))
    intake = json.loads((eng.path / "intake.json").read_text())
    assert sorted(intake["files"]) == ["data/export/part-0.parquet", "data/export/part-1.parquet"]
    [outcome] = run_phases(eng, ["data_audit"], {}, progress=False)
    assert outcome.succeeded, outcome.error
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    inputs = json.dumps(manifest)
    assert "part-0.parquet" in inputs and "part-1.parquet" in inputs
    results = json.loads((outcome.run_dir / "results.json").read_text())
    assert results["results"]["stats"]["n_records"] == 150
    problems, _ = verify_engagement(eng)
    assert problems == []
    (eng.path / "data/export/part-1.parquet").write_bytes(b"changed")
    problems, _ = verify_engagement(eng)
    assert any("part-1.parquet" in p for p in problems)
