"""The best prompt, found on the validation split: it becomes the test-set baseline (``baseline.prompt_search``).

"Start with prompt engineering; the best you get is the baseline fine-tuning must beat." The candidates are

- ``zero-shot``: the consultant's prompt (``task.system_prompt``, no shots): the prompt training trains with and
  serving serves, so the evaluation's same-prompt view compares against it;
- ``spelled-out``: the same with the allowed labels (classification) or the JSON schema / keys
  (structured_output) spelled out after it (``baseline.prompt_search.spell_out``);
- ``k-shot``: one candidate per k of ``baseline.prompt_search.k_shots``, shots drawn seeded from the TRAIN split
  only (stratified by label, ``ftkit.prompting.select_shots``), never from validation or test;
- the consultant's own variants from ``baseline.prompt_search.variants_file`` (YAML, errors name file and line).

Every candidate answers the same seeded, label-stratified sample of the validation split (``max_examples``) with
the baseline's backend, ``max_new_tokens`` and batch size, and is scored with the task's metrics and bootstrap
CIs. Rule: the highest validation headline metric wins; ties (within ``TIE_TOLERANCE``) go to the shorter prompt
(fewer mean prompt tokens: cheaper per request), then to the earlier candidate in the order above (the consultant's
prompt first). The test split is not touched here; the winner is what the baseline then scores on it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ftkit.errors import DataError
from ftkit.prompting import PromptSpec, make_spec, select_shots, split_record
from ftkit.section import finding

MIN_VALIDATION_EXAMPLES = 20  # validation examples per candidate below which the winner is mostly noise (count)
TIE_TOLERANCE = 1e-9  # headline-metric difference (metric units) that counts as a tie
MAX_SPELLED_LABELS = 200  # labels listed at most in the spelled-out prompt (count); more are cut with a note

LABEL_SET_INSTRUCTION = "Answer with exactly one of these labels and nothing else: {labels}."
SCHEMA_INSTRUCTION = "Answer with one JSON object and nothing else. It must match this JSON Schema: {schema}"
KEYS_INSTRUCTION = "Answer with one JSON object and nothing else, with exactly these keys: {keys}."
VARIANT_KEYS = ("name", "system_prompt", "shots")
BUILT_IN = ("zero-shot", "spelled-out")


@dataclass
class Candidate:
    """One prompt to try: its name, how it was made and the spec that decides it."""

    name: str
    kind: str  # zero_shot | spelled_out | k_shot | variant
    spec: PromptSpec
    origin: str = ""  # variants: "file line N"

    @property
    def spec_sha256(self) -> str:
        """sha256 of the spec as JSON (system prompt, shots, seed): equal = the same prompt for every record."""
        return spec_sha256(self.spec)

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "origin": self.origin, "spec": asdict(self.spec),
                "n_shots": len(self.spec.shots), "shot_ids": self.spec.shot_ids, "spec_sha256": self.spec_sha256}


def spec_sha256(spec: PromptSpec) -> str:
    """
    >>> spec_sha256(PromptSpec("a")) == spec_sha256(PromptSpec("a")) != spec_sha256(PromptSpec("b"))
    True
    """
    text = json.dumps(asdict(spec), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def with_instruction(system_prompt: str, instruction: str) -> str:
    """The consultant's system prompt with an instruction appended (a blank line between).

    >>> with_instruction("Classify the ticket.", "Answer with a label.")
    'Classify the ticket.\\n\\nAnswer with a label.'
    >>> with_instruction("", "Answer with a label.")
    'Answer with a label.'
    """
    return f"{system_prompt.rstrip()}\n\n{instruction}" if system_prompt.strip() else instruction


def label_set(task, train: list[dict]) -> list[str]:
    """``task.labels``, else the labels of the train split (the record's ``label``, else its reference), sorted."""
    if task.labels:
        return list(task.labels)
    return sorted({str(r["label"]) if r.get("label") is not None else split_record(r)[1].strip() for r in train})


def spelled_out_instruction(task, train: list[dict]) -> str | None:
    """What the spelled-out candidate appends, or None when the task type has nothing to spell out."""
    if task.type == "classification":
        labels = label_set(task, train)
        return LABEL_SET_INSTRUCTION.format(labels=", ".join(labels[:MAX_SPELLED_LABELS])) if labels else None
    if task.type == "structured_output":
        if task.json_schema:
            return SCHEMA_INSTRUCTION.format(schema=json.dumps(task.json_schema, ensure_ascii=False, sort_keys=True))
        keys = _json_keys(train)
        return KEYS_INSTRUCTION.format(keys=", ".join(keys)) if keys else None
    return None


def _json_keys(train: list[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for record in train:
        try:
            obj = json.loads(split_record(record)[1])
        except ValueError:
            continue
        if isinstance(obj, dict):
            keys.update(dict.fromkeys(obj))
    return list(keys)


# -- the consultant's variants ---------------------------------------------------------------------------------------

def read_variants(path: str | Path) -> list[dict]:
    """``[{"name", "system_prompt", "shots", "line"}]`` from a YAML list; DataError naming file, line and field.

    The file is a list of mappings, e.g. ``- name: polite`` / ``system_prompt: "..."`` / ``shots: 2``
    (``shots`` optional, default 0).
    """
    from ruamel.yaml import YAMLError

    from ftkit.yamlio import round_trip

    path = Path(path)
    fix = "see baseline.prompt_search.variants_file in the README"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: variants file not found; create it or clear baseline.prompt_search.variants_file.") \
            from None
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8.") from None
    try:
        data = round_trip().load(text)
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise DataError(f"{path}{where}: YAML syntax error: {getattr(err, 'problem', None) or err}; check "
                        f"indentation and quoting there.") from None
    if not isinstance(data, list) or not data:
        raise DataError(f"{path}: expected a YAML list of prompt variants (- name: ... / system_prompt: ...); {fix}.")
    out, seen = [], set(BUILT_IN)
    for i, item in enumerate(data):
        line = data.lc.item(i)[0] + 1
        out.append(_variant(path, line, item, seen, fix))
    return out


def _variant(path: Path, line: int, item, seen: set, fix: str) -> dict:
    def bad(field: str, problem: str):
        at = item.lc.key(field)[0] + 1 if isinstance(item, dict) and field in item else line
        return DataError(f"{path} line {at}: {field}: {problem}; {fix}.")

    if not isinstance(item, dict):
        raise DataError(f"{path} line {line}: expected a mapping with name and system_prompt, got {str(item)[:40]!r}; "
                        f"{fix}.")
    unknown = [k for k in item if k not in VARIANT_KEYS]
    if unknown:
        raise bad(str(unknown[0]), f"unknown key (valid: {', '.join(VARIANT_KEYS)})")
    name, system_prompt, shots = item.get("name"), item.get("system_prompt"), item.get("shots", 0)
    if not isinstance(name, str) or not name.strip():
        raise bad("name", f"expected a non-empty name, got {name!r}")
    if name.strip() in seen or name.strip().endswith("-shot"):
        raise bad("name", f"{name!r} is already taken (names are unique; built-in: {', '.join(BUILT_IN)}, k-shot)")
    if not isinstance(system_prompt, str):
        raise bad("system_prompt", f"expected text, got {system_prompt!r}")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
        raise bad("shots", f"expected a whole number of at least 0, got {shots!r}")
    from ftkit.safe_values import text_problem

    problem = text_problem(system_prompt, multiline=True)
    if problem:
        raise bad("system_prompt", problem)
    seen.add(name.strip())
    return {"name": name.strip(), "system_prompt": str(system_prompt), "shots": int(shots), "line": line}


# -- candidates and the validation sample ----------------------------------------------------------------------------

def candidates(config, train: list[dict], variants: list[dict] = (), variants_path: str = "") -> list[Candidate]:
    """The candidates in their tie-break order: zero-shot, spelled-out, k-shot (ascending k), variants."""
    task, search, seed = config.task, config.baseline.prompt_search, config.data.split.seed
    system = task.system_prompt
    out = [Candidate("zero-shot", "zero_shot", make_spec(train, 0, system, seed))]
    instruction = spelled_out_instruction(task, train) if search.spell_out else None
    if instruction:  # appended to the system prompt in effect (a record's own one included)
        out.append(Candidate("spelled-out", "spelled_out", replace(make_spec(train, 0, system, seed),
                                                                   instruction=instruction)))
    out += [Candidate(f"{k}-shot", "k_shot", make_spec(train, k, system, seed)) for k in search.k_shots]
    out += [Candidate(v["name"], "variant", replace(make_spec(train, v["shots"], v["system_prompt"], seed),
                                                    replace_system=True),  # a variant's prompt is the whole prompt
                      f"{Path(variants_path).name} line {v['line']}") for v in variants]
    return out


def validation_sample(validation: list[dict], max_examples: int, seed: int) -> list[dict]:
    """A seeded sample of ``max_examples`` validation records (all when 0 or more than there are), round-robin
    over labels so every class is represented; in validation-file order."""
    if max_examples <= 0 or max_examples >= len(validation):
        return list(validation)
    picked = {id(r) for r in select_shots(validation, max_examples, seed)}
    return [r for r in validation if id(r) in picked]


# -- scoring and the choice ------------------------------------------------------------------------------------------

@dataclass
class Scored:
    candidate: Candidate
    report: object  # ftkit.metrics.MetricsReport on the validation sample
    predictions: list  # ftkit.generation.Prediction rows

    @property
    def mean_prompt_tokens(self) -> float:
        return sum(p.n_input_tokens for p in self.predictions) / max(1, len(self.predictions))

    @property
    def prompts_sha256(self) -> str:
        """sha256 over the per-example prompt hashes: equal = the same prompts on the same examples."""
        return hashlib.sha256("\n".join(p.prompt_sha256 for p in self.predictions).encode("utf-8")).hexdigest()


def choose(scored: list[Scored], n_boot: int = 1000, seed: int = 0) -> tuple[Scored, list[dict]]:
    """(the winner, one table row per candidate): highest headline metric; ties to fewer mean prompt tokens,
    then to the earlier candidate. Each row carries the paired bootstrap difference to the zero-shot prompt."""
    from ftkit.metrics import paired_bootstrap

    if not scored:
        raise ValueError("no candidates were scored")
    metric = scored[0].report.headline_metric
    sign = -1 if scored[0].report.statistics[metric].higher_is_better is False else 1

    def better(a: Scored, b: Scored) -> bool:
        va, vb = sign * a.report.value(metric), sign * b.report.value(metric)
        if abs(va - vb) > TIE_TOLERANCE:
            return va > vb
        return a.mean_prompt_tokens < b.mean_prompt_tokens  # strictly shorter; equal keeps the earlier one

    winner = scored[0]
    for s in scored[1:]:
        winner = s if better(s, winner) else winner
    reference = scored[0]  # the zero-shot (consultant's) prompt
    rows = []
    for s in scored:
        lo, hi = s.report.cis[metric]
        diff = paired_bootstrap(s.report.statistics[metric], reference.report.statistics[metric], n_boot, seed)
        rows.append({"candidate": s.candidate.name, "kind": s.candidate.kind, "shots": len(s.candidate.spec.shots),
                     metric: s.report.value(metric), "ci_low": lo, "ci_high": hi,
                     "diff_to_zero_shot": diff["diff"], "diff_ci_low": diff["ci_low"], "diff_ci_high": diff["ci_high"],
                     "mean_prompt_tokens": round(s.mean_prompt_tokens, 1), "spec_sha256": s.candidate.spec_sha256,
                     "prompts_sha256": s.prompts_sha256, "winner": s is winner})
    return winner, rows


def score(config, cands: list[Candidate], records: list[dict], length_records: list[dict], progress: bool = False,
          seed: int = 0) -> list[Scored]:
    """Every candidate answers ``records`` with the baseline's backend and generation settings, then is scored.

    The local backend loads the model once for all candidates (same loading, template and ``max_new_tokens``
    as ``ftkit.generation.generate_for_config``); other backends go through ``generate_for_config`` per candidate.
    """
    from ftkit.metrics import evaluate

    generate = _generator(config, length_records, progress)
    return [Scored(c, evaluate(preds, config.task, seed=seed), preds)  # the baseline's own scoring
            for c in cands for preds in [generate(records, c.spec)]]


def _generator(config, length_records: list[dict], progress: bool):
    from ftkit.generation import generate_for_config

    if config.baseline.backend != "local":
        return lambda records, spec: generate_for_config(config, records, spec, length_records,
                                                         progress=progress).predictions
    from ftkit.chat_plan import fit_embeddings, prepare_tokenizer
    from ftkit.generation import derive_max_new_tokens, generate_local, reference_token_lengths
    from ftkit.models import base_model_source, load_model_and_tokenizer
    from ftkit.prompting import build_prompts

    loaded = load_model_and_tokenizer(base_model_source(config.base_model))
    prepare_tokenizer(loaded.tokenizer, config)  # the engagement's template, as every phase renders it
    fit_embeddings(loaded.model, loaded.tokenizer)
    max_new = derive_max_new_tokens(config.baseline.max_new_tokens,
                                    reference_token_lengths(length_records, loaded.tokenizer))
    return lambda records, spec: generate_local(loaded.model, loaded.tokenizer,
                                                build_prompts(records, spec, loaded.tokenizer), max_new,
                                                config.baseline.batch_size, progress=progress)


def plot_candidates(rows: list[dict], metric: str):
    """Bars of each candidate's validation score with its 95 % CI, the winner highlighted."""
    import matplotlib.pyplot as plt  # no matplotlib.use(): the kernel's inline backend stays active

    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(rows) + 2), 3.2))
    values = [r[metric] for r in rows]
    err = [[max(0.0, v - r["ci_low"]) for v, r in zip(values, rows)],
           [max(0.0, r["ci_high"] - v) for v, r in zip(values, rows)]]
    ax.bar(range(len(rows)), values, yerr=err, capsize=3,
           color=["#2f6fde" if r["winner"] else "#9aa5b1" for r in rows])
    ax.set_xticks(range(len(rows)), [r["candidate"] for r in rows], rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"{metric} on validation (95 % CI)")
    ax.set_title("Candidate prompts (winner in blue)")
    fig.tight_layout()
    return fig


# -- the rules -------------------------------------------------------------------------------------------------------

def no_validation_finding():
    return finding("warning", "baseline.prompt_search.no_validation",
                   "The prompt search needs a validation split and the data audit wrote none: the consultant's prompt "
                   "(baseline.shots) is the baseline.",
                   "Set data.split.validation (e.g. 0.1) and re-run the data audit, then the baseline.")


def validation_size_finding(n: int):
    """A warning below MIN_VALIDATION_EXAMPLES examples per candidate: the ranking is then mostly noise."""
    if n < MIN_VALIDATION_EXAMPLES:
        return finding("warning", "baseline.prompt_search.few_examples",
                       f"Each candidate answered only {n} validation examples (fewer than {MIN_VALIDATION_EXAMPLES}): "
                       f"the ranking below is mostly noise.",
                       "Raise baseline.prompt_search.max_examples (0 = the whole validation split).")
    return finding("info", "baseline.prompt_search.examples", f"Each candidate answered the same {n} validation "
                   f"examples (a seeded sample, stratified by label); the test split was not used.")


def winner_finding(rows: list[dict], metric: str):
    """Which prompt won and by how much over the zero-shot prompt (paired 95 % CI on the validation sample)."""
    win = next(r for r in rows if r["winner"])
    base = rows[0]
    text = (f"Best prompt on validation: {win['candidate']} ({metric} {win[metric]:.3f}, 95 % CI "
            f"{win['ci_low']:.3f}-{win['ci_high']:.3f}) of {len(rows)} candidates; it is the test-set baseline.")
    if win is base:
        return finding("info", "baseline.prompt_search.winner", text + " The consultant's zero-shot prompt won: the "
                       "baseline and the fine-tuned model use the same prompt.")
    significant = win["diff_ci_low"] > 0 or win["diff_ci_high"] < 0
    return finding("info", "baseline.prompt_search.winner",
                   text + f" Against the zero-shot prompt ({base[metric]:.3f}): {win['diff_to_zero_shot']:+.3f} "
                   f"(paired 95 % CI {win['diff_ci_low']:+.3f} to {win['diff_ci_high']:+.3f}"
                   + (")." if significant else "; not significant on this sample)."),
                   "The evaluation compares the fine-tuned model against the base model under this prompt (and, as a "
                   "second view, under the fine-tuned model's own prompt).")


def served_check_finding(best: float, served: float, metric: str, n: int, winner: str):
    """On the test split: the winner against the consultant's prompt (both recorded for the evaluation)."""
    return finding("info", "baseline.prompt_search.test_check",
                   f"On the {n} test examples the winner ({winner}) scores {metric} {best:.3f} and the consultant's "
                   f"zero-shot prompt {served:.3f}; both are recorded for the evaluation's two views.")
