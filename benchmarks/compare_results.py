"""Compare every phase's latest results.json of two engagements (e.g. a demo before and after a refactor).

    python benchmarks/compare_results.py BEFORE_ENGAGEMENT_DIR AFTER_ENGAGEMENT_DIR

Run ids, UTC times, durations, speeds, latencies and the hashes of run-dependent files are expected to
differ and are masked; everything else (headline, results, findings with their severity, code, message and
next step, verdicts, tell_client, next_steps, blocks_downstream) must be equal. Prints one line per difference,
then one JSON object on its last line: {"phases": n, "differences": n, "by_phase": {...}, "ratio": ...} where
``ratio`` is differences per compared value (0.0 when identical).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")
# Keys whose values depend on the clock or the machine's load, not on the code's decisions.
VOLATILE_KEY = re.compile(r"(^|_)(utc|seconds|second|minutes|latency|latency_p\d+_s|load_s|duration|elapsed|"
                          r"per_s|per_second|tokens_per_s|tokens_per_second|samples_per_second|steps_per_second|"
                          r"throughput|time|wall|started|finished|peak_memory|available_gb|memory_gb)($|_)|_s$|^p\d+_s$|sha256$|"
                          r"^folder$|^path$")
ENVELOPE_SKIP = {"run_id", "started_utc", "finished_utc", "inputs", "schema", "params", "provenance"}
# Sentences that quote timings (tokens/s, minutes) are compared with their numbers masked.
NUMBER = re.compile(r"\d[\d,]*(\.\d+)?(e[-+]?\d+)?")
TIMING_WORDS = re.compile(r"tokens/s|minutes| min\b|seconds|per second| s\b|latency|GB available|peak memory", re.I)


def latest_results(engagement: Path) -> dict[str, dict]:
    out = {}
    for phase_dir in sorted((engagement / "phases").iterdir()):
        pointer = phase_dir / "latest"
        run_id = pointer.read_text().strip() if pointer.is_file() else (pointer.resolve().name if pointer.exists() else "")
        path = phase_dir / "runs" / run_id / "results.json"
        if run_id and path.is_file():
            out[phase_dir.name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def _norm_str(value: str, roots: list[str]) -> str:
    for root in roots:
        value = value.replace(root, "<ROOT>")
    value = RUN_ID.sub("<RUN>", value)
    if TIMING_WORDS.search(value):
        value = NUMBER.sub("<N>", value)
    return value


def diff(a, b, where: str, roots: tuple[list[str], list[str]], out: list[str], counter: list[int]) -> None:
    counter[0] += 1
    if isinstance(a, dict) and isinstance(b, dict):
        if VOLATILE_KEY.search(str(a.get("metric", ""))):  # a row of a timing metric (latency_p50_s, ...)
            return
        for key in list(dict.fromkeys([*a, *b])):
            if VOLATILE_KEY.search(str(key)):
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'after' if key in b else 'before'}")
                continue
            diff(a[key], b[key], f"{where}.{key}", roots, out, counter)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} items before, {len(b)} after")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{where}[{i}]", roots, out, counter)
        return
    if isinstance(a, str) and isinstance(b, str):
        a, b = _norm_str(a, roots[0]), _norm_str(b, roots[1])
    if isinstance(a, float) and isinstance(b, float) and abs(a - b) <= 1e-12 * max(1.0, abs(a)):
        return
    if a != b:
        out.append(f"{where}: {a!r:.200} -> {b!r:.200}")


def compare(before: Path, after: Path) -> tuple[list[str], dict]:
    old, new = latest_results(before), latest_results(after)
    roots = ([str(before.resolve()), str(before.resolve().parent)], [str(after.resolve()), str(after.resolve().parent)])
    lines, by_phase, counter = [], {}, [0]
    for phase in sorted(set(old) | set(new)):
        if phase not in old or phase not in new:
            lines.append(f"{phase}: only {'after' if phase in new else 'before'}")
            by_phase[phase] = 1
            continue
        found: list[str] = []
        a = {k: v for k, v in old[phase].items() if k not in ENVELOPE_SKIP}
        b = {k: v for k, v in new[phase].items() if k not in ENVELOPE_SKIP}
        diff(a, b, phase, roots, found, counter)
        lines += found
        by_phase[phase] = len(found)
    return lines, {"phases": len(set(old) | set(new)), "differences": sum(by_phase.values()), "by_phase": by_phase,
                   "ratio": sum(by_phase.values()) / max(1, counter[0])}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__)
        return 2
    lines, summary = compare(Path(argv[0]), Path(argv[1]))
    for line in lines:
        print(line)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
