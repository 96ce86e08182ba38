"""Reading client files safely: sniff the container, then stream records with bounded memory.

Containers: JSONL (one JSON value per line), a JSON array (streamed element by element, also when it is
minified onto one line), and CSV/TSV (header row + rows; the delimiter, comma, semicolon, tab or pipe, is
detected from the header row by ``csv.Sniffer``), UTF-8 with or without BOM, LF or CRLF, each also gzip- or
zstd-compressed (``.gz``/``.zst``, recognised by their magic bytes, decompressed as a stream); Parquet and Arrow
files (pyarrow, read in record batches); Hugging Face ``save_to_disk`` folders (their Arrow shards, in
``state.json`` order) and plain dataset folders of Parquet/Arrow/JSONL shards; Excel ``.xlsx`` with an explicit
sheet (openpyxl in read-only mode). Columnar rows become ``{column: value}`` records, nested lists and structs
as JSON lists and objects, so a ``messages`` column reads as chat.

Memory is bounded by ``MAX_RECORD_BYTES`` per record whatever the file: lines are read with
``readline(limit)`` and an over-long line is skipped in 1 MiB pieces; JSON arrays are decoded element by
element from a sliding buffer. Pathological files (0 bytes, binary, UTF-16, one JSON object instead of a
list) raise :class:`FileProblem` with a code from the checks registry and a message that says what to do.

A record's ``line`` is its 1-based physical line (JSONL, CSV: the row's first line; compressed files: the
line of the decompressed text), its 1-based index in a JSON array, its 1-based row in a Parquet/Arrow file or
dataset folder (counted across shards), or its sheet row number in Excel (the header is row 1).
"""
from __future__ import annotations

import codecs
import csv
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, NamedTuple

from ftkit.errors import DataError

MAX_RECORD_BYTES = 4 * 1024 * 1024  # 4 MiB: ~1M tokens, far beyond any context window
SNIFF_BYTES = 64 * 1024
WHOLE_OBJECT_LIMIT = 64 * 1024 * 1024  # a pretty-printed single JSON object up to this size is parsed to explain it
_CHUNK = 1 << 20

_MAGIC = {  # first bytes of common non-text exports we do not read, with what to do instead
    b"PK\x03\x04": "a ZIP container (.zip/.docx, or an .xlsx not named .xlsx): unzip it, or name an Excel "
                    "workbook .xlsx and set data.sheet",
    b"%PDF": "a PDF document: extract the records into JSONL or CSV",
    b"SQLite format 3\x00": "an SQLite database: export the table as CSV or JSONL",
    b"\xd0\xcf\x11\xe0": "an old Office document (.xls/.doc): open it and save the sheet as .xlsx or CSV (UTF-8)",
    b"BZh": "a bzip2 archive: decompress it first (or recompress it with gzip or zstd)",
}
GZIP_MAGIC, ZSTD_MAGIC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC, ARROW_FILE_MAGIC, ARROW_STREAM_MAGIC = b"PAR1", b"ARROW1", b"\xff\xff\xff\xff"
COLUMNAR_BATCH = 1000  # rows per record batch read from Parquet/Arrow (bounded memory whatever the file)
CSV_DELIMITERS = ",;\t|"
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


class FileProblem(DataError):
    """The file as a whole cannot be read as records. ``code`` is a registry check code (``file.*``)."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


class RawItem(NamedTuple):
    """One record as read: ``data`` is the raw line (bytes, JSONL), a decoded value (JSON array) or a row
    dict (CSV). ``problem`` is set instead when the record itself could not be read (code, message).
    A named tuple, not a dataclass: chunks of these go to worker processes, and unpickling a tuple is ~8x
    cheaper."""

    line: int
    data: Any = None
    problem: tuple[str, str] | None = None


@dataclass
class Sniff:
    container: str  # "jsonl" | "json_array" | "csv" | "parquet" | "arrow" | "dataset_folder" | "xlsx"
    has_bom: bool
    delimiter: str = ","
    compression: str = ""  # "" | "gzip" | "zstd"
    shards: tuple = ()  # dataset folders: the shard files in reading order
    sheet: str = ""  # xlsx

    @property
    def dialect(self) -> str:
        """What the summary says about how the file was read ('semicolon-separated', 'gzip', ...)."""
        parts = [f"{_DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))}-separated, double-quoted"] \
            if self.container == "csv" else []
        if self.compression:
            parts.append(f"{self.compression}-compressed")
        if self.shards:
            parts.append(f"{len(self.shards)} shard{'s' if len(self.shards) != 1 else ''}")
        if self.sheet:
            parts.append(f"sheet {self.sheet!r}")
        return ", ".join(parts)


def _open_binary(path: Path, compression: str = ""):
    """A binary stream of the file's (decompressed) bytes; gzip via the standard library, zstd via zstandard."""
    if compression == "gzip":
        import gzip

        return gzip.open(path, "rb")
    if compression == "zstd":
        import io

        zstd = _require("zstandard", "Reading .zst files")
        raw = open(path, "rb")
        return io.BufferedReader(zstd.ZstdDecompressor().stream_reader(raw, closefd=True), _CHUNK)
    return open(path, "rb")


def _require(module: str, purpose: str, package: str = ""):
    import importlib

    from ftkit.errors import MissingDependency

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(package or module, purpose) from None


def _read_head(path: Path, compression: str) -> bytes:
    try:
        with _open_binary(path, compression) as handle:
            return handle.read(SNIFF_BYTES)
    except (OSError, EOFError, ValueError, zlib.error) as err:  # BadGzipFile is an OSError; zstd: ZstdError
        raise FileProblem("file.compressed", f"{path}: the {compression} data cannot be decompressed ({err}); the "
                          f"file is damaged or truncated: compress it again from the original.") from None


def _sniff_folder(path: Path, sheet: str) -> Sniff:
    """A Hugging Face save_to_disk folder (state.json lists its Arrow shards) or a folder of data shards."""
    state = path / "state.json"
    if (path / "dataset_dict.json").is_file():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        raise FileProblem("file.dataset_dict", f"{path} is a Hugging Face DatasetDict with splits "
                          f"{', '.join(splits) or '(none)'}: give one split's folder, e.g. {path / (splits[0] if splits else 'train')}"
                          f" (a 'test' split folder can go to data.test_files).")
    if state.is_file():
        try:
            names = [f["filename"] for f in json.loads(state.read_text("utf-8"))["_data_files"]]
        except (ValueError, KeyError, TypeError) as err:
            raise FileProblem("file.unknown_format", f"{state}: not a readable datasets state.json ({err}); save the "
                              f"dataset again with save_to_disk.") from None
        shards = tuple(path / n for n in names)
        missing = [str(p) for p in shards if not p.is_file()]
        if missing:
            raise FileProblem("file.not_found", f"{path}: state.json lists {missing[0]}, which is missing; copy the "
                              f"whole dataset folder.")
        return Sniff("dataset_folder", False, shards=shards)
    for ext in (".parquet", ".arrow", ".jsonl", ".jsonl.gz", ".jsonl.zst"):
        shards = tuple(sorted(p for p in path.rglob(f"*{ext}") if p.is_file()))
        if shards:
            return Sniff("dataset_folder", False, shards=shards)
    raise FileProblem("file.not_found", f"{path} is a folder without a datasets state.json or .parquet/.arrow/.jsonl "
                      f"shards: give a data file, or a folder saved with save_to_disk.")


def sniff(path: Path, fmt: str = "auto", sheet: str = "") -> Sniff:
    """Decide how to read ``path`` from its first 64 KiB (decompressed); raise FileProblem for unreadable files.
    ``sheet``: the Excel sheet to read (data.sheet); an .xlsx without one is refused with how to export it."""
    if path.is_dir():
        return _sniff_folder(path, sheet)
    if not path.is_file():
        raise FileProblem("file.not_found", f"{path}: no such file.")
    size = path.stat().st_size
    if size == 0:
        raise FileProblem("file.empty", f"{path} is empty (0 bytes): export the data again.")
    with open(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    if head.startswith(PARQUET_MAGIC):
        return Sniff("parquet", False)
    if head.startswith(ARROW_FILE_MAGIC) or head.startswith(ARROW_STREAM_MAGIC) and path.suffix.lower() == ".arrow":
        return Sniff("arrow", False)
    if head.startswith(b"PK\x03\x04") and path.suffix.lower() in (".xlsx", ".xlsm"):
        if not sheet:
            raise FileProblem("file.excel", f"{path} is an Excel workbook: set data.sheet (and data.columns.prompt/"
                              f"completion) in engagement.yaml, or pass --sheet, or save the sheet as CSV UTF-8 "
                              f"(File > Save As > CSV UTF-8).")
        return Sniff("xlsx", False, sheet=sheet)
    compression = "gzip" if head.startswith(GZIP_MAGIC) else ("zstd" if head.startswith(ZSTD_MAGIC) else "")
    if compression:
        head = _read_head(path, compression)
        if not head:
            raise FileProblem("file.empty", f"{path} decompresses to nothing: export the data again.")
    _refuse_binary(path, head)
    has_bom = head.startswith(codecs.BOM_UTF8)
    text = head[3:] if has_bom else head
    stripped = text.lstrip()
    if not stripped:
        raise FileProblem("file.empty", f"{path} contains only whitespace: there are no records in it.")
    first = stripped[:1]
    inner = path.name.lower().removesuffix(".gz").removesuffix(".zst").removesuffix(".zstd")
    if fmt == "csv" or inner.endswith((".csv", ".tsv")):
        return Sniff("csv", has_bom, _csv_delimiter(text, inner.endswith(".tsv")), compression)
    if first == b"[":
        return Sniff("json_array", has_bom, compression=compression)
    if first == b"{":
        return Sniff("jsonl", has_bom, compression=compression)
    raise FileProblem("file.unknown_format",
                      f"{path} starts with {stripped[:20].decode('utf-8', 'replace')!r}, not '{{' (JSONL) or '[' (JSON array), "
                      f"and is not named .csv/.tsv. Export it as JSONL, a JSON array, CSV, Parquet or Arrow, or pass --format csv.")


def _csv_delimiter(text: bytes, tsv: bool) -> str:
    """The header row's delimiter among comma, semicolon, tab and pipe (csv.Sniffer on the header alone: on the
    rows, commas in free text mislead its consistency vote); comma when the header has a single column."""
    if tsv:
        return "\t"
    header = text.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
    try:
        return csv.Sniffer().sniff(header, delimiters=CSV_DELIMITERS).delimiter
    except csv.Error:
        return ","


def _refuse_binary(path: Path, head: bytes) -> None:
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise FileProblem("file.binary", f"{path} is {what}.")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (len(head) > 3 and head[1:2] == b"\x00" and head[3:4] == b"\x00"):
        raise FileProblem("file.encoding", f"{path} is UTF-16 encoded; re-save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`).")
    nul = head.find(b"\x00")
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))  # noqa: E501
    if nul >= 0 or controls > 0.1 * len(head):
        where = f"a NUL byte at offset {nul}" if nul >= 0 else f"{controls} control bytes in the first {len(head)}"
        raise FileProblem("file.binary", f"{path} looks binary ({where}), not text. Export the data as UTF-8 JSONL, JSON or CSV.")
    bad = len(head) - len(head.decode("utf-8", "ignore").encode("utf-8"))
    if bad > max(8, 0.05 * len(head)):
        raise FileProblem("file.binary", f"{path} is not UTF-8 text ({bad} undecodable bytes in the first {len(head)}): "
                                         f"re-export it as UTF-8 (it may be Latin-1/Windows-1252 or binary).")


def iter_items(path: Path, info: Sniff) -> Iterator[RawItem]:
    """Stream the records of ``path``; the reader for ``info.container``."""
    return _READERS[info.container](path, info)


# -- JSONL ------------------------------------------------------------------------------------------------

def _iter_lines(handle) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, line bytes or None if too long, length in bytes) for every line, with bounded memory."""
    line_no = 0
    while True:
        chunk = handle.readline(MAX_RECORD_BYTES + 1)
        if not chunk:
            return
        line_no += 1
        if len(chunk) > MAX_RECORD_BYTES and not chunk.endswith(b"\n"):
            size = len(chunk)
            while True:  # skip the rest of this line in 1 MiB pieces
                rest = handle.readline(_CHUNK)
                size += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield line_no, None, size
            continue
        yield line_no, chunk, len(chunk)


def _read_jsonl(path: Path, info: Sniff) -> Iterator[RawItem]:
    with _open_binary(path, info.compression) as handle:
        if info.has_bom:
            handle.read(3)
        for line_no, chunk, size in _iter_lines(handle):
            if chunk is None:
                yield RawItem(line_no, problem=("record.too_large", _too_large(line_no, size)))
            elif chunk.strip():
                yield RawItem(line_no, chunk)


def _too_large(line_no: int, size: int) -> str:
    return (f"line {line_no} is {size / 1e6:.1f} MB long (limit {MAX_RECORD_BYTES // (1024 * 1024)} MiB per record); "
            f"no training example is this large: is it a whole JSON document written on one line, or a file "
            f"without line breaks?")


def decode_json_line(raw: bytes, line_no: int) -> tuple[Any, tuple[str, str] | None]:
    """Decode one JSONL line into a value, or return a (code, message) problem naming the fix."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, ("encoding.invalid_utf8",
                      f"line {line_no}: byte 0x{raw[err.start]:02x} at column {err.start + 1} is not UTF-8; "
                      f"re-export the file as UTF-8")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return None, ("json.invalid", f"line {line_no}, column {err.colno}: invalid JSON ({err.msg})")
    except RecursionError:
        return None, ("json.invalid", f"line {line_no}: JSON nested too deeply to read")
    if b"\\u" in raw and _SURROGATE_ESCAPE.search(text) and has_lone_surrogate(obj):
        return None, ("encoding.invalid_utf8", _lone_surrogate_message(f"line {line_no}"))
    return obj, None


# JSON may escape UTF-16 surrogates (\uD83D\uDE00 is one emoji); one without its pair decodes to a string
# that is no valid text and cannot be written as UTF-8, so the record is refused here, with its line.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def has_lone_surrogate(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _lone_surrogate_message(where: str) -> str:
    return (f"{where}: contains an escaped UTF-16 surrogate (\\uD800-\\uDFFF) without its pair, which is not a "
            f"character; remove it or re-export the file as proper UTF-8")


# -- JSON array -------------------------------------------------------------------------------------------

def _read_json_array(path: Path, info: Sniff) -> Iterator[RawItem]:
    """Decode a JSON array element by element from a sliding text buffer (works on minified one-line files)."""
    decoder = json.JSONDecoder()
    incremental = codecs.getincrementaldecoder("utf-8-sig")()
    buf, pos, eof, index = "", 0, False, 0
    with _open_binary(path, info.compression) as handle:

        def fill() -> bool:
            nonlocal buf, pos, eof
            raw = handle.read(_CHUNK)
            try:
                text = incremental.decode(raw, final=not raw)
            except UnicodeDecodeError as err:
                raise FileProblem("encoding.invalid_utf8", f"{path}: invalid UTF-8 near byte "
                                  f"{handle.tell() - len(raw) + err.start} (record {index + 1}); re-export the file as UTF-8.")
            buf, pos = buf[pos:] + text, 0
            eof = not raw
            return bool(text)

        def skip_ws() -> str:
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in " \t\r\n":
                    pos += 1
                if pos < len(buf) or eof:
                    return buf[pos:pos + 1]
                fill()

        fill()
        if skip_ws() != "[":
            raise FileProblem("file.invalid_json", f"{path}: expected '[' at the start of a JSON array.")
        pos += 1
        while True:
            ch = skip_ws()
            if ch == "]":
                pos += 1
                break
            if not ch:
                raise FileProblem("file.invalid_json", f"{path}: the JSON array ends after record {index} without its "
                                  f"closing ']' (the file is truncated); re-export it.")
            if index and ch == ",":
                pos += 1
                skip_ws()
            value = _decode_element(decoder, path, index + 1, lambda: (buf, pos, eof), fill)
            obj, end = value
            index += 1
            raw, pos = buf[pos:end], end
            if "\\u" in raw and _SURROGATE_ESCAPE.search(raw) and has_lone_surrogate(obj):
                yield RawItem(index, problem=("encoding.invalid_utf8", _lone_surrogate_message(f"record {index}")))
            else:
                yield RawItem(index, obj)
            ch = skip_ws()
            if ch not in (",", "]"):
                raise FileProblem("file.invalid_json", f"{path}: expected ',' or ']' after record {index}, found {ch!r}; "
                                  f"fix the JSON there.")
        if skip_ws():
            raise FileProblem("file.trailing_data", f"{path}: there is data after the closing ']' of the JSON array; remove it.")


def _decode_element(decoder, path, number, state, fill):
    """raw_decode one element; read more text while it is cut off by the buffer's end (bounded).

    A cut-off element fails differently once more text is there; a broken one fails the same way again
    (same message, same offset from the element's start), which is when we give up and say where.
    """
    last_error = None
    while True:
        buf, pos, eof = state()
        try:
            obj, end = decoder.raw_decode(buf, pos)
            if end < len(buf) or eof:
                return obj, end
        except json.JSONDecodeError as err:
            signature = (err.msg, err.pos - pos)
            if eof or signature == last_error:
                raise FileProblem("file.invalid_json", f"{path}: record {number} is not valid JSON ({err.msg}, "
                                  f"{err.pos - pos} characters into the record); fix it there.") from None
            last_error = signature
        except RecursionError:
            raise FileProblem("file.invalid_json", f"{path}: record {number} is nested too deeply to read.") from None
        if len(buf) - pos > MAX_RECORD_BYTES:
            raise FileProblem("record.too_large", f"{path}: record {number} is larger than "
                              f"{MAX_RECORD_BYTES // (1024 * 1024)} MiB; no training example is this large.")
        fill()


# -- CSV / TSV --------------------------------------------------------------------------------------------

def _read_csv(path: Path, info: Sniff) -> Iterator[RawItem]:
    """Rows as {header: value} dicts. Lines are decoded one by one so a bad byte costs one row, not the file."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
    bad_lines: dict[int, str] = {}
    line_counter = [0]

    def lines() -> Iterator[str]:
        with _open_binary(path, info.compression) as handle:
            if info.has_bom:
                handle.read(3)
            for line_no, chunk, size in _iter_lines(handle):
                line_counter[0] = line_no
                if chunk is None:
                    bad_lines[line_no] = _too_large(line_no, size)
                    yield "\n"
                    continue
                try:
                    yield chunk.decode("utf-8")
                except UnicodeDecodeError as err:
                    bad_lines[line_no] = f"line {line_no}: byte 0x{chunk[err.start]:02x} is not UTF-8; re-export as UTF-8"
                    yield chunk.decode("utf-8", "replace")

    reader = csv.reader(lines(), delimiter=info.delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as err:  # e.g. a bare carriage return in the header row
        raise _csv_problem(path, reader.line_num, err) from None
    header = [h.strip() for h in header]
    start = reader.line_num + 1
    try:
        for row in reader:
            line_no, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            bad = next((bad_lines.pop(n) for n in range(line_no, start) if n in bad_lines), None)
            if bad:
                code = "record.too_large" if "MiB" in bad else "encoding.invalid_utf8"
                yield RawItem(line_no, problem=(code, bad))
                continue
            if len(row) != len(header):
                yield RawItem(line_no, problem=("record.bad_type", f"line {line_no}: {len(row)} fields, the header has "
                                                f"{len(header)}; check quoting of commas and line breaks in this row"))
                continue
            yield RawItem(line_no, dict(zip(header, row)))
    except csv.Error as err:
        raise _csv_problem(path, reader.line_num, err) from None


def _csv_problem(path: Path, line: int, err: csv.Error) -> FileProblem:
    return FileProblem("file.invalid_csv", f"{path}: CSV cannot be parsed at line {line}: {err}; check the quoting there.")


# -- Parquet, Arrow, dataset folders, Excel ------------------------------------------------------------------

def _pyarrow():
    return _require("pyarrow", "Reading Parquet/Arrow files and Hugging Face dataset folders")


def _batches(path: Path, kind: str):
    """Record batches of a Parquet or Arrow (IPC file or stream) file, at most COLUMNAR_BATCH rows each."""
    pa = _pyarrow()
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            yield from pq.ParquetFile(path).iter_batches(batch_size=COLUMNAR_BATCH)
            return
        with pa.memory_map(str(path)) as source:
            try:
                reader = pa.ipc.open_file(source)
                batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            except pa.ArrowInvalid:
                source.seek(0)
                batches = iter(pa.ipc.open_stream(source))  # what datasets' save_to_disk writes
            for batch in batches:
                for lo in range(0, batch.num_rows, COLUMNAR_BATCH):
                    yield batch.slice(lo, COLUMNAR_BATCH)
    except (pa.ArrowException, OSError) as err:
        raise FileProblem("file.columnar", f"{path}: cannot be read as {kind} ({err}); export it again "
                          f"(pandas: df.to_parquet(...), datasets: ds.save_to_disk(...)).") from None


def _read_columnar(path: Path, info: Sniff) -> Iterator[RawItem]:
    row = 0
    for batch in _batches(path, info.container):
        for record in batch.to_pylist():
            row += 1
            yield RawItem(row, _drop_nulls(record))


def _drop_nulls(value: Any) -> Any:
    """Columnar schemas are the union of all rows: a message struct without 'weight' reads as weight=None.
    Absent in the row means absent in the record, as it was in the JSON the data team exported.

    >>> _drop_nulls({"messages": [{"role": "user", "content": "hi", "weight": None}], "id": None})
    {'messages': [{'role': 'user', 'content': 'hi'}]}
    """
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _read_folder(path: Path, info: Sniff) -> Iterator[RawItem]:
    """Every shard in order, rows numbered across shards (row 1 of shard 2 follows the last row of shard 1)."""
    row = 0
    for shard in info.shards:
        inner = sniff(shard)
        if inner.container == "dataset_folder":
            continue
        for item in _READERS[inner.container](shard, inner):
            row += 1
            yield item._replace(line=row)


def _read_xlsx(path: Path, info: Sniff) -> Iterator[RawItem]:
    """Rows of one sheet as {header: text} dicts (read-only mode: streamed, bounded memory). Numbers and dates
    become their text; empty cells empty strings; the header is row 1, so a record's line is its sheet row."""
    openpyxl = _require("openpyxl", "Reading Excel workbooks")
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as err:  # noqa: BLE001 - openpyxl raises zipfile/KeyError/InvalidFileException alike
        raise FileProblem("file.excel", f"{path}: cannot be opened as an Excel workbook ({err}); save it again as "
                          f".xlsx or as CSV UTF-8.") from None
    try:
        if info.sheet not in book.sheetnames:
            raise FileProblem("file.excel", f"{path}: no sheet {info.sheet!r} (sheets: {', '.join(book.sheetnames)}); "
                              f"set data.sheet to one of them.")
        rows = book[info.sheet].iter_rows(values_only=True)
        header = [("" if h is None else str(h)).strip() for h in next(rows, ())]
        if not any(header):
            raise FileProblem("file.excel", f"{path}: sheet {info.sheet!r} has no header row in row 1; put the column "
                              f"names there.")
        for number, values in enumerate(rows, 2):
            cells = ["" if v is None else str(v) for v in values]
            if not any(c.strip() for c in cells):
                continue
            cells += [""] * (len(header) - len(cells))
            yield RawItem(number, {h: c for h, c in zip(header, cells) if h})
    finally:
        book.close()


_READERS = {"jsonl": _read_jsonl, "json_array": _read_json_array, "csv": _read_csv, "parquet": _read_columnar,
            "arrow": _read_columnar, "dataset_folder": _read_folder, "xlsx": _read_xlsx}
# containers whose rows are already {column: value} dicts; "tabular" ones are mapped with data.columns like CSV
TABULAR_CONTAINERS = ("csv", "xlsx")


def explain_single_object(path: Path) -> FileProblem | None:
    """If ``path`` is one (pretty-printed) JSON object rather than records, a FileProblem explaining it."""
    if path.stat().st_size > WHOLE_OBJECT_LIMIT:
        return None
    try:
        with open(path, encoding="utf-8-sig") as handle:
            obj = json.load(handle)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    return not_a_list_problem(path, obj)


def not_a_list_problem(path: Path, obj: dict) -> FileProblem:
    keys = list(obj)[:8]
    lists = [k for k, v in obj.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
    hint = (f"The records look like the list under '{lists[0]}' ({len(obj[lists[0]])} items): save that list as a "
            f"JSON array or as JSONL (one object per line)." if lists else
            "Save the records as a JSON array [...] or as JSONL (one object per line).")
    return FileProblem("file.not_a_list", f"{path} holds one JSON object (keys: {', '.join(map(str, keys))}), "
                                          f"not a list of records. {hint}")


__all__ = ["FileProblem", "RawItem", "Sniff", "sniff", "iter_items", "decode_json_line", "explain_single_object",
           "not_a_list_problem", "MAX_RECORD_BYTES"]
