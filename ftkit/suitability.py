"""Suitability: should this client fine-tune at all, and if so how?

The decision framework of a fine-tuning engagement, encoded as explicit rules. Each rule looks at the
questionnaire answers (``engagement.yaml`` → ``suitability``, ``compliance``, ``budget``) and returns a
``Criterion``: which way it points, how strongly, why, and where the advice comes from. ``assess`` turns
the criteria into a recommendation, method, hosting, risk register, what would change the answer, and a
timeline. No torch here: this phase must start in a second.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ftkit.config import EngagementConfig

RECOMMENDATIONS = ("fine_tune", "prompt_engineering", "rag", "hybrid", "not_yet")

# Where the rules come from (cited in the report so a client can read the reasoning for themselves).
SOURCES = {
    "openai_ft_guide": "OpenAI, 'Fine-tuning' guide: when to fine-tune, and try prompt engineering first "
                       "(platform.openai.com/docs/guides/fine-tuning)",
    "openai_data": "OpenAI fine-tuning guide: 50-100 examples show improvement; quality scales with data",
    "rag_vs_ft": "Ovadia et al. 2024, 'Fine-Tuning or Retrieval? Comparing Knowledge Injection in LLMs' "
                 "(arXiv:2312.05934): RAG beats fine-tuning for new knowledge",
    "lora": "Hu et al. 2021, 'LoRA' (arXiv:2106.09685); Biderman et al. 2024, 'LoRA Learns Less and Forgets Less'",
    "qlora": "Dettmers et al. 2023, 'QLoRA' (arXiv:2305.14314): 4-bit NF4 base + LoRA matches 16-bit LoRA",
    "gdpr": "GDPR Art. 28 and 44-49 (processors, international transfers); HIPAA 45 CFR 164.502(e) (business associates)",
    "practice": "ftkit engagement practice (consultancy experience; see README 'Suitability rules')",
}

# Data readiness bands (quality examples): the band's lower bound, name and meaning.
READINESS_BANDS = ((0, "insufficient", "fewer than 100 examples: collect more data before fine-tuning"),
                   (100, "pilot", "100-499: enough for a pilot that shows direction, not for production"),
                   (500, "adequate", "500-1,999: adequate for a narrow task"),
                   (2000, "strong", "2,000+: strong; expect stable results and room for a held-out test set"))

# Typical bytes per parameter for training (weights + grads + optimizer + activations, rough planning numbers).
_GB_PER_B_PARAMS = {"full": 16.0, "lora": 2.6, "qlora": 0.9}
_KNOWN_SIZES_B = {"smollm2-135m": 0.135, "tiny-random": 0.001, "1b": 1, "1.5b": 1.5, "3b": 3, "7b": 7, "8b": 8,
                  "13b": 13, "14b": 14, "32b": 32, "70b": 70, "135m": 0.135, "360m": 0.36, "0.5b": 0.5}


@dataclass(frozen=True)
class Criterion:
    """One rule's verdict. ``points_to`` is a recommendation or 'neutral'; ``weight`` 0-3 is how decisive."""

    code: str
    title: str
    points_to: str
    weight: int
    finding: str
    rationale: str
    source: str = "practice"

    def to_dict(self) -> dict:
        return {**asdict(self), "source_text": SOURCES.get(self.source, self.source)}


@dataclass
class Facts:
    """What the rules see: the answers plus derived numbers (example count, model size)."""

    config: EngagementConfig
    n_examples: int
    params_b: float

    @property
    def answers(self):
        return self.config.suitability


Rule = Callable[[Facts], "Criterion | None"]
RULES: dict[str, Rule] = {}


def rule(code: str):
    def register(func: Rule) -> Rule:
        RULES[code] = func
        return func
    return register


def readiness_band(n_examples: int) -> tuple[str, str]:
    """('pilot', '100-499: ...') for a count of quality examples.

    >>> readiness_band(99)[0], readiness_band(100)[0], readiness_band(500)[0], readiness_band(2000)[0]
    ('insufficient', 'pilot', 'adequate', 'strong')
    """
    name, meaning = READINESS_BANDS[0][1:]
    for lower, band, text in READINESS_BANDS:
        if n_examples >= lower:
            name, meaning = band, text
    return name, meaning


# -- rules against fine-tuning -----------------------------------------------------------------------

@rule("fresh_facts")
def _fresh_facts(f: Facts):
    if not f.answers.needs_fresh_facts:
        return None
    return Criterion("fresh_facts", "Needs new or changing facts", "rag", 3,
                     "Answers depend on new or changing facts, citations or real-time information.",
                     "Fine-tuning teaches behaviour and format, not reliable recall of facts; facts baked into "
                     "weights go stale and cannot be cited. Retrieval (RAG) keeps them current and attributable.",
                     "rag_vs_ft")


@rule("data_volume")
def _data_volume(f: Facts):
    band, meaning = readiness_band(f.n_examples)
    if band == "insufficient":
        return Criterion("data_volume", "Data readiness", "not_yet", 3,
                         f"{f.n_examples} quality examples: {meaning}.",
                         "Below ~100-200 quality examples a fine-tune mostly memorises; a few-shot prompt usually "
                         "does as well. Collect and label more examples first.", "openai_data")
    return Criterion("data_volume", "Data readiness", "fine_tune" if band in ("adequate", "strong") else "neutral",
                     2 if band == "strong" else 1, f"{f.n_examples} quality examples: {meaning}.",
                     "Enough labelled examples to learn a consistent behaviour and hold out a test set.", "openai_data")


@rule("requirements_stable")
def _requirements(f: Facts):
    if f.answers.requirements_stable:
        return None
    return Criterion("requirements_stable", "Requirements change often", "prompt_engineering", 2,
                     "The desired behaviour is not settled yet.",
                     "Each change of requirements means relabelling data and retraining; a prompt is changed in "
                     "minutes. Fine-tune once the behaviour is stable.", "practice")


@rule("prompt_engineering_first")
def _prompt_first(f: Facts):
    if f.answers.prompt_engineering_tried:
        notes = f.answers.prompt_engineering_notes.strip()
        return Criterion("prompt_engineering_first", "Prompt engineering tried", "neutral", 0,
                         "A documented prompt-engineering attempt exists" + (f": {notes}" if notes else "."),
                         "The baseline phase will measure the best prompt; fine-tuning must beat it.", "openai_ft_guide")
    return Criterion("prompt_engineering_first", "Prompt engineering not tried yet", "prompt_engineering", 2,
                     "No documented prompt-engineering attempt exists.",
                     "Prompting (instructions, few-shot examples) is cheaper and faster to iterate; it also yields "
                     "the baseline a fine-tune must beat. Try and document it first.", "openai_ft_guide")


# -- rules for fine-tuning ---------------------------------------------------------------------------

def _fit_rule(code: str, title: str, attribute: str, finding: str, rationale: str, weight: int = 2):
    @rule(code)
    def _check(f: Facts):
        if getattr(f.answers, attribute):
            return Criterion(code, title, "fine_tune", weight, finding, rationale, "openai_ft_guide")
        return None
    return _check


_fit_rule("strict_output_format", "Consistent output format", "strict_output_format",
          "A specific output format or schema must be followed every time.",
          "Fine-tuning makes a format the model's default, more reliably than instructions alone, and saves "
          "the tokens spent describing it in every prompt.")
_fit_rule("specialised_domain", "Specialised domain", "specialised_domain",
          "The task uses specialised vocabulary or domain behaviour.",
          "Examples teach domain conventions that are hard to describe in a prompt.")
_fit_rule("style_or_voice", "Style or brand voice", "style_or_voice",
          "A style or brand voice must be kept.",
          "Tone is easier to show with hundreds of examples than to describe.", weight=1)
_fit_rule("high_volume", "High volume", "high_volume",
          "Request volume is high.",
          "A fine-tuned small model with a short prompt can replace a large model with a long prompt, cutting "
          "cost per request and latency.")
_fit_rule("narrow_task", "Narrow, well-defined task", "narrow_task",
          "The task is narrow with consistent input -> output.",
          "Narrow tasks are where small fine-tuned models match or beat large general ones.")


# -- method and hosting ------------------------------------------------------------------------------

def training_memory_gb(params_b: float, method: str) -> float:
    """Rough GPU memory to train (GB) at moderate sequence length; planning numbers, see _GB_PER_B_PARAMS.

    >>> training_memory_gb(7, "lora"), training_memory_gb(7, "qlora"), training_memory_gb(7, "full")
    (18.2, 6.3, 112.0)
    """
    return round(params_b * _GB_PER_B_PARAMS[method], 1)


def choose_method(f: Facts) -> tuple[str, str]:
    gpu = f.config.budget.gpu_memory_gb
    lora_gb, qlora_gb, full_gb = (training_memory_gb(f.params_b, m) for m in ("lora", "qlora", "full"))
    big_budget = f.config.budget.total_usd >= 10_000  # full fine-tuning: many GPU-hours and bigger checkpoints
    if f.n_examples >= 10_000 and full_gb <= gpu and big_budget:
        return "full", (f"{f.n_examples:,} examples and a budget of ${f.config.budget.total_usd:,.0f}: full "
                        f"fine-tuning (~{full_gb} GB) can use the data; LoRA remains the cheaper fallback.")
    if lora_gb <= gpu:
        return "lora", (f"LoRA fits: ~{lora_gb} GB needed for a {f.params_b:g}B model vs {gpu:g} GB available. "
                        f"It trains <1 % of the weights, forgets less and yields a small adapter.")
    if qlora_gb <= gpu:
        return "qlora", (f"LoRA needs ~{lora_gb} GB for a {f.params_b:g}B model but only {gpu:g} GB is available; "
                         f"QLoRA (4-bit base) needs ~{qlora_gb} GB with near-equal quality.")
    return "qlora", (f"Even QLoRA needs ~{qlora_gb} GB for a {f.params_b:g}B model, more than the {gpu:g} GB available: "
                     f"rent a larger GPU or choose a smaller base model.")


_RESTRICTIVE = {"hipaa", "gdpr", "data_residency", "pci_dss"}


def choose_hosting(f: Facts) -> tuple[str, str]:
    comp = f.config.compliance
    regimes = sorted(_RESTRICTIVE & set(comp.frameworks))
    if not comp.allow_external_providers:
        return "self_hosted", "Data may not be sent to an external provider: self-host an open-weight model."
    if comp.data_residency or regimes:
        reason = ", ".join(regimes) + (f"; data must stay in {comp.data_residency}" if comp.data_residency else "")
        return "self_hosted", (f"Compliance ({reason.strip(', ;')}) makes sending data to a provider a legal "
                               f"question; self-hosting an open-weight model avoids it (a managed provider is "
                               f"possible only with a signed DPA/BAA and in-region processing).")
    return "managed_or_self_hosted", ("No compliance constraint forbids a provider: a managed fine-tuning API is the "
                                      "fastest start; self-host when volume makes it cheaper (see deployment plan).")


# -- the decision ------------------------------------------------------------------------------------

@dataclass
class Assessment:
    recommendation: str
    headline: str
    criteria: list[Criterion]
    method: str = ""
    method_reason: str = ""
    hosting: str = ""
    hosting_reason: str = ""
    readiness: str = ""
    n_examples: int = 0
    params_b: float = 0.0
    risks: list[dict] = field(default_factory=list)
    would_change: list[str] = field(default_factory=list)
    timeline_weeks: tuple[int, int] = (0, 0)
    timeline_plan: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["criteria"] = [c.to_dict() for c in self.criteria]
        data["timeline_weeks"] = list(self.timeline_weeks)
        return data


def assess(config: EngagementConfig, n_examples: int, params_b: float | None = None) -> Assessment:
    facts = Facts(config, n_examples, params_b if params_b else model_size_b(config))
    criteria = [c for c in (check(facts) for check in RULES.values()) if c is not None]
    recommendation, headline = _decide(criteria)
    result = Assessment(recommendation, headline, criteria, readiness=readiness_band(n_examples)[0],
                        n_examples=n_examples, params_b=facts.params_b)
    if recommendation in ("fine_tune", "hybrid"):
        result.method, result.method_reason = choose_method(facts)
        result.hosting, result.hosting_reason = choose_hosting(facts)
    result.risks = risk_register(facts, result)
    result.would_change = what_would_change(facts, criteria, recommendation)
    result.timeline_weeks, result.timeline_plan = timeline(facts, recommendation)
    return result


def _decide(criteria: list[Criterion]) -> tuple[str, str]:
    by = {c.code: c for c in criteria}
    fits = [c for c in criteria if c.points_to == "fine_tune" and c.code != "data_volume"]
    if "data_volume" in by and by["data_volume"].points_to == "not_yet":
        if "fresh_facts" in by:
            return "rag", "Use retrieval now; too few examples to fine-tune, and the need is for current facts."
        return "not_yet", "Not yet: collect at least 100-200 quality examples (500+ for production) first."
    if "fresh_facts" in by:
        if fits:
            return "hybrid", ("Hybrid: retrieval for the changing facts, fine-tuning for "
                              + ", ".join(c.title.lower() for c in fits) + ".")
        return "rag", "Use retrieval-augmented generation: the need is for current, citable facts."
    if "requirements_stable" in by:
        return "prompt_engineering", "Prompt engineering until the requirements settle; fine-tune afterwards."
    if by.get("prompt_engineering_first", None) and by["prompt_engineering_first"].points_to == "prompt_engineering":
        return "prompt_engineering", "Prompt engineering first: document the best prompt, then reassess."
    if not fits:
        return "prompt_engineering", ("Prompt engineering: none of the situations where fine-tuning pays off "
                                      "(strict format, domain, voice, volume, narrow task) applies.")
    return "fine_tune", "Fine-tune: " + ", ".join(c.title.lower() for c in fits) + "."


def risk_register(f: Facts, result: Assessment) -> list[dict]:
    """Risks with likelihood, impact and mitigation; computed from the answers, not a fixed list."""
    risks = []

    def add(risk, likelihood, impact, mitigation):
        risks.append({"risk": risk, "likelihood": likelihood, "impact": impact, "mitigation": mitigation})

    if result.readiness in ("insufficient", "pilot"):
        add("Too little data for a reliable model", "high", "high",
            "Treat the first round as a pilot; plan a data-collection sprint; judge on the held-out test set.")
    add("Data quality problems (duplicates, PII, inconsistent labels)", "medium", "high",
        "The data audit phase flags them per row; fix before training.")
    if f.config.compliance.frameworks or not f.config.compliance.allow_external_providers:
        add("Compliance breach through data handling", "medium", "high",
            "Self-host; PII scan and redaction in the data audit; keep data in the engagement folder only.")
    add("Fine-tuned model does not beat the prompted baseline", "medium", "medium",
        "Baseline first; go/no-go on pre-agreed acceptance criteria with confidence intervals.")
    add("Overfitting / catastrophic forgetting", "medium", "medium",
        "Validation loss with early stopping; forgetting probe in the evaluation phase; LoRA over full.")
    if not f.answers.requirements_stable:
        add("Moving requirements invalidate labelled data", "high", "high", "Freeze the spec before labelling.")
    add("Base model or provider end-of-life", "low", "medium",
        "Pin versions; keep training data and scripts to retrain on a successor model.")
    return risks


def what_would_change(f: Facts, criteria: list[Criterion], recommendation: str) -> list[str]:
    changes = []
    if recommendation == "not_yet":
        changes.append(f"Reaching 100-200 quality examples (now {f.n_examples}) would allow a pilot fine-tune.")
    if recommendation == "prompt_engineering":
        if not f.answers.prompt_engineering_tried:
            changes.append("A documented prompt that still misses the acceptance criteria would justify fine-tuning.")
        if not f.answers.requirements_stable:
            changes.append("Stable requirements would make fine-tuning worthwhile.")
    if recommendation in ("rag", "hybrid"):
        changes.append("If the answers did not depend on changing facts, fine-tuning alone could suffice.")
    if recommendation in ("fine_tune", "hybrid"):
        changes.append("A well-documented prompt meeting the acceptance criteria in the baseline phase would make "
                       "fine-tuning unnecessary.")
        if f.answers.needs_fresh_facts is False:
            changes.append("A new need for current or citable facts would add retrieval (hybrid).")
    return changes


def timeline(f: Facts, recommendation: str) -> tuple[tuple[int, int], list[dict]]:
    """Weeks (low, high): 4-10 for a fine-tune, scaled by data readiness and task complexity."""
    if recommendation not in ("fine_tune", "hybrid"):
        weeks = {"prompt_engineering": (1, 3), "rag": (3, 8), "not_yet": (2, 6)}[recommendation]
        return weeks, [{"step": "see recommendation", "weeks": f"{weeks[0]}-{weeks[1]}"}]
    data_weeks = {"insufficient": (3, 5), "pilot": (2, 3), "adequate": (1, 2), "strong": (1, 2)}[readiness_band(f.n_examples)[0]]
    complex_task = f.config.task.type in ("free_text", "chat") or f.answers.specialised_domain
    plan = [("suitability and baseline", (1, 1)), ("data preparation", data_weeks),
            ("training iterations (2-3 rounds)", (1, 3) if complex_task else (1, 2)),
            ("evaluation and client review", (1, 2)), ("deployment and handover", (0, 2) if not complex_task else (1, 2))]
    if recommendation == "hybrid":
        plan.append(("retrieval pipeline", (1, 2)))
    low = max(4, sum(lo for _, (lo, _) in plan))
    high = min(max(low + 2, sum(hi for _, (_, hi) in plan)), 12 if recommendation == "hybrid" else 10)
    return (low, high), [{"step": s, "weeks": f"{lo}-{hi}"} for s, (lo, hi) in plan]


# -- facts from the engagement -----------------------------------------------------------------------

def model_size_b(config: EngagementConfig) -> float:
    """Base model size in billions: the questionnaire's answer, else guessed from the model name."""
    if config.suitability.base_model_params_b:
        return config.suitability.base_model_params_b
    name = config.base_model.id.lower()
    for key in sorted(_KNOWN_SIZES_B, key=len, reverse=True):
        if key in name:
            return _KNOWN_SIZES_B[key]
    return 7.0  # the common size of open instruct models; stated in the report as an assumption


def count_examples(config: EngagementConfig, data_files: list[Path]) -> int:
    """Quality examples: the questionnaire's answer, else records in the data files (JSONL lines, JSON array items, CSV rows)."""
    if config.suitability.quality_examples:
        return config.suitability.quality_examples
    return sum(count_records(path) for path in data_files)


def count_records(path: Path) -> int:
    if not path.is_file():
        return 0
    suffix = path.suffix.lower()
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        if suffix in (".csv", ".tsv"):
            return max(0, sum(1 for _ in csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ",")) - 1)
        if suffix == ".json":
            try:
                data = json.load(handle)
            except ValueError:
                return 0
            return len(data) if isinstance(data, list) else 1
        return sum(1 for line in handle if line.strip())


def plot_criteria(result: Assessment):
    """Horizontal bars: each criterion's weight, signed (+ for fine-tuning, - against), coloured by direction."""
    import matplotlib.pyplot as plt

    colours = {"fine_tune": "#1a7f37", "neutral": "#8c959f", "prompt_engineering": "#bf8700", "rag": "#0969da",
               "not_yet": "#cf222e", "hybrid": "#8250df"}
    criteria = result.criteria
    values = [c.weight if c.points_to == "fine_tune" else (0.15 if c.points_to == "neutral" else -c.weight)
              for c in criteria]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(criteria) + 1.2))
    ax.barh([c.title for c in criteria], values, color=[colours.get(c.points_to, "#8c959f") for c in criteria])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-3.5, 3.5)
    ax.set_xlabel("<- against fine-tuning      weight      for fine-tuning ->")
    ax.set_title(f"Suitability criteria: recommendation = {result.recommendation}")
    for bar, c in zip(ax.patches, criteria):
        ax.text(bar.get_width() + (0.08 if bar.get_width() >= 0 else -0.08), bar.get_y() + bar.get_height() / 2,
                c.points_to.replace("_", " "), va="center", ha="left" if bar.get_width() >= 0 else "right", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
