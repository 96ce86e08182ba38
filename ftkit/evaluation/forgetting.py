"""Forgetting probe: does the fine-tuned model still answer simple general questions it answered before?

Fine-tuning a narrow task can erode general abilities ("catastrophic forgetting"); a client who later asks
the model anything off-task should know. The probe is deliberately small (~30 one-line questions with short
reference answers, ``ftkit/sample_data/general_probe.jsonl``, written for ftkit) so it costs seconds; a
consultant can point ``evaluation.probe_set`` at a client-specific one in the same format:

    {"id": "probe-01", "kind": "fact", "prompt": "What is the capital of France?", "answers": ["Paris"]}

Scoring is lenient on purpose (the probe measures change, not absolute quality): an answer is right when,
after lower-casing and turning punctuation into spaces, it contains one of the accepted answers as whole
words; numeric answers are compared as numbers with the numbers the answer gives ("-18.0°C" is not "0"). The same model before and after fine-tuning is asked without the task's system prompt, through the
same chat template, greedily.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ftkit.errors import DataError

DEFAULT_PROBE_FILE = "general_probe.jsonl"


@dataclass(frozen=True)
class Probe:
    id: str
    prompt: str
    answers: tuple[str, ...]
    kind: str = "general"


def default_probe_path() -> Path:
    from ftkit.resources import sample_data_dir

    return sample_data_dir() / DEFAULT_PROBE_FILE


def load_probes(path: str | Path | None = None) -> list[Probe]:
    """The probe set at ``path`` (the shipped one when empty); every malformed line is listed at once."""
    path = Path(path) if path else default_probe_path()
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise DataError(f"Probe set {path} not found; fix evaluation.probe_set (relative to the engagement "
                        f"folder) or leave it empty to use the shipped one.") from None
    probes, problems, ids = [], [], set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        probe, problem = _parse(line, ids)
        if problem:
            problems.append(f"line {number}: {problem}")
        else:
            probes.append(probe)
            ids.add(probe.id)
    if problems or not probes:
        problems = problems or ["the file has no probes"]
        raise DataError(f"Probe set {path} has {len(problems)} problem(s):\n" + "\n".join(f"  - {p}" for p in problems)
                        + '\nEach line: {"id": "...", "prompt": "...", "answers": ["...", ...]}')
    return probes


def _parse(line: str, ids: set) -> tuple[Probe | None, str]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        return None, f"not valid JSON ({err.msg} at column {err.colno})"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    pid, prompt, answers = str(row.get("id", "")).strip(), row.get("prompt"), row.get("answers")
    if not pid:
        return None, "no 'id'"
    if pid in ids:
        return None, f"duplicate id {pid!r}"
    if not isinstance(prompt, str) or not prompt.strip():
        return None, f"probe {pid!r} has no 'prompt' text"
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and normalise(a) for a in answers):
        return None, f"probe {pid!r}: 'answers' must be a non-empty list of non-empty strings"
    return Probe(pid, prompt.strip(), tuple(answers), str(row.get("kind", "general"))), ""


def normalise(text: str) -> str:
    """Lower-case, punctuation to spaces, single spaces, padded so whole-word matches are substring matches.

    >>> normalise("Paris, France!")
    ' paris france '
    """
    return " " + " ".join(re.sub(r"[^\w]+", " ", text.lower()).split()) + " "


def is_correct(output: str, answers) -> bool:
    """Whether ``output`` contains one of ``answers`` as whole words (case and punctuation ignored); a numeric
    answer ("0", "1, 2, 3") is compared as numbers with the numbers the output gives (``metrics.numbers``), so
    "-18.0°C" is not a right answer to "0".

    >>> is_correct("The capital is Paris.", ["paris"]), is_correct("Parisian food", ["Paris"])
    (True, False)
    >>> is_correct("1, 2, 3", ["1 2 3"]), is_correct("-18.0°C", ["0", "zero"]), is_correct("0 °C", ["0", "zero"])
    (True, False, True)
    """
    from ftkit.metrics.numbers import contains_numbers, is_numeric

    text = normalise(output)
    return any(contains_numbers(output, a) if is_numeric(a) else normalise(a) in text for a in answers)


def probe_prompts(probes: list[Probe], tokenizer):
    """PromptItems (``ftkit.prompting``) for the probes: one user turn each, rendered with the chat template."""
    from ftkit.prompting import PromptItem, render

    items = []
    for probe in probes:
        messages = [{"role": "user", "content": probe.prompt}]
        items.append(PromptItem(probe.id, messages, render(tokenizer, messages), probe.answers[0], probe.kind))
    return items


def score(probes: list[Probe], outputs: list[str]) -> list[float]:
    """1.0 / 0.0 per probe, in order."""
    if len(probes) != len(outputs):
        raise ValueError(f"{len(probes)} probes but {len(outputs)} outputs")
    return [float(is_correct(out, p.answers)) for p, out in zip(probes, outputs)]


def compare(probes: list[Probe], before: list[str], after: list[str]) -> dict:
    """Probe accuracy before and after fine-tuning, the drop (before - after, share of probes), McNemar's test,
    and the probes lost and gained with both answers.

    >>> ps = [Probe("a", "q", ("x",)), Probe("b", "q", ("y",))]
    >>> r = compare(ps, ["x", "y"], ["x", "no"])
    >>> r["before"], r["after"], r["drop"], [x["id"] for x in r["lost"]]
    (1.0, 0.5, 0.5, ['b'])
    """
    from ftkit.evaluation.paired import mcnemar

    s_before, s_after = score(probes, before), score(probes, after)
    n = len(probes)
    acc_before, acc_after = sum(s_before) / n, sum(s_after) / n
    rows = [{"id": p.id, "kind": p.kind, "prompt": p.prompt, "expected": " / ".join(p.answers),
             "before": b, "after": a} for p, b, a in zip(probes, before, after)]
    lost = [r for r, sb, sa in zip(rows, s_before, s_after) if sb > sa]
    gained = [r for r, sb, sa in zip(rows, s_before, s_after) if sa > sb]
    return {"n": n, "before": acc_before, "after": acc_after, "drop": acc_before - acc_after,
            "mcnemar": mcnemar(s_before, s_after).to_dict(), "lost": lost, "gained": gained,
            "scores_before": s_before, "scores_after": s_after}
