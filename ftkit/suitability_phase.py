"""The suitability phase's building blocks: what ``notebooks/01_suitability.ipynb`` calls, one function per section.

The rules themselves (criteria, method, hosting, risks, timeline) are in :mod:`ftkit.suitability`; this module
turns them into sections (tables, figures, findings: :class:`ftkit.section.Section`), the typed
``SuitabilityResults`` and what to tell the client. Tests: ``tests/suitability/test_phase.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ftkit.phase_results import PhaseResults, described
from ftkit.section import Section, finding

READY_BANDS = ("adequate", "strong")  # data-readiness bands (ftkit.suitability.READINESS_BANDS) that need no warning
ROUTES_AGAINST = ("fine_tune", "neutral")  # a criterion pointing anywhere else is a warning against fine-tuning


# -- the rules -------------------------------------------------------------------------------------------------------

def readiness_finding(n_examples: int, band: str, meaning: str):
    ok = band in READY_BANDS
    return finding("info" if ok else "warning", "suitability.data_readiness",
                   f"{n_examples:,} quality examples put the client in the '{band}' band ({meaning}).",
                   "" if ok else "Plan a data-collection sprint before or alongside a pilot.")


def criteria_findings(assessment) -> list:
    """A warning per criterion pointing away from fine-tuning, then the recommendation."""
    out = [finding("warning", f"suitability.{c.code}", c.finding, c.rationale)
           for c in assessment.criteria if c.points_to not in ROUTES_AGAINST]
    return out + [finding("info", "suitability.recommendation", assessment.headline)]


def method_findings(assessment) -> list:
    if not assessment.method:
        return []
    return [finding("info", "suitability.method", f"Method: {assessment.method}. {assessment.method_reason}"),
            finding("info", "suitability.hosting", f"Hosting: {assessment.hosting}. {assessment.hosting_reason}")]


def high_risks(risks: list[dict]) -> list[dict]:
    return [r for r in risks if r["likelihood"] == "high" and r["impact"] == "high"]


def risks_finding(risks: list[dict]):
    """A warning when any risk is both high-likelihood and high-impact."""
    high = high_risks(risks)
    if not high:
        return None
    return finding("warning", "suitability.high_risks", f"{len(high)} high-likelihood, high-impact risk(s): "
                   + "; ".join(r["risk"] for r in high) + ".", high[0]["mitigation"])


def timeline_finding(weeks: tuple[int, int], band: str, task_type: str):
    low, high = weeks
    return finding("info", "suitability.timeline", f"Estimated timeline: {low}-{high} weeks, scaled by data "
                   f"readiness ('{band}') and task complexity ('{task_type}').")


# -- the sections ----------------------------------------------------------------------------------------------------

@dataclass
class Facts:
    n_examples: int
    params_b: float  # billions of parameters
    band: str
    band_meaning: str


def facts(run) -> Section:
    """Section 1: how many quality examples and how large a model. value: Facts."""
    from ftkit import suitability

    config = run.config
    n_examples = suitability.count_examples(config, run.data_files())
    params_b = suitability.model_size_b(config)
    band, meaning = suitability.readiness_band(n_examples)
    rows = [
        {"fact": "objective", "value": config.objective or "(not stated)"},
        {"fact": "task type", "value": config.task.type},
        {"fact": "quality examples", "value": f"{n_examples:,}"},
        {"fact": "data readiness", "value": f"{band}: {meaning}"},
        {"fact": "base model", "value": f"{config.base_model.id} (~{params_b:g}B parameters)"},
        {"fact": "compliance", "value": ", ".join(config.compliance.frameworks) or "none stated"},
        {"fact": "GPU memory available", "value": f"{config.budget.gpu_memory_gb:g} GB"},
    ]
    return Section(value=Facts(n_examples, params_b, band, meaning)).table(rows).add(
        readiness_finding(n_examples, band, meaning))


def criteria(config, f: Facts) -> Section:
    """Section 2: every rule's direction, weight and rationale. value: the Assessment."""
    from ftkit import suitability

    a = suitability.assess(config, f.n_examples, f.params_b)
    sec = Section(value=a).table([{"criterion": c.title, "points to": c.points_to, "weight": c.weight,
                                   "finding": c.finding, "rationale": c.rationale} for c in a.criteria])
    sec.figures.append(("criteria", suitability.plot_criteria(a)))
    return sec.add(*criteria_findings(a))


def method_and_hosting(a) -> Section:
    if not a.method:
        return Section(notes=[f"No method chosen: the recommendation is '{a.recommendation}', not fine-tuning."])
    sec = Section().table([{"decision": "method", "choice": a.method, "why": a.method_reason},
                           {"decision": "hosting", "choice": a.hosting, "why": a.hosting_reason}])
    return sec.add(*method_findings(a))


def risk_register(a) -> Section:
    return Section().table(a.risks).add(risks_finding(a.risks))


def timeline(a, config, f: Facts) -> Section:
    """Section 5: what would change the recommendation, and the timeline."""
    sec = Section(notes=[f"- {change}" for change in a.would_change]).table(a.timeline_plan)
    return sec.add(timeline_finding(a.timeline_weeks, f.band, config.task.type))


# -- typed results ---------------------------------------------------------------------------------------------------

@dataclass
class SuitabilityResults(PhaseResults):
    """The recommendation and its reasons (results.json ``results``: ftkit.suitability.Assessment.to_dict())."""

    PHASE = "suitability"
    SCHEMA_VERSION = 1

    recommendation: str = described("fine_tune | prompt_engineering | rag | hybrid | not_yet")
    headline: str = described("the recommendation in one sentence")
    criteria: list = described("every rule that applied: code, title, points_to, weight (0-3), finding, rationale")
    method: str = described("lora | qlora | full; empty unless fine-tuning is recommended")
    method_reason: str = described("why that method")
    hosting: str = described("self_hosted | managed_api; empty unless fine-tuning is recommended")
    hosting_reason: str = described("why that hosting")
    readiness: str = described("data-readiness band: insufficient | pilot | adequate | strong")
    n_examples: int = described("quality examples counted or stated", "examples")
    params_b: float = described("base model size", "billions of parameters")
    risks: list = described("risk register rows: risk, likelihood, impact, mitigation")
    would_change: list = described("what would change the recommendation")
    timeline_weeks: list = described("low and high estimate", "weeks")
    timeline_plan: list = described("phases of the plan with their weeks")

    @classmethod
    def of(cls, assessment) -> "SuitabilityResults":
        return cls(**assessment.to_dict())

    def headline_row(self) -> dict:
        low, high = self.timeline_weeks
        return {"recommendation": self.recommendation, "method": self.method or "-", "hosting": self.hosting or "-",
                "readiness": self.readiness, "timeline_weeks": f"{low}-{high}"}


TELL_CLIENT = {
    "fine_tune": "Fine-tuning fits this need. {headline} We recommend {method} ({hosting}); expect {low}-{high} weeks.",
    "hybrid": "{headline} Expect {low}-{high} weeks.",
    "prompt_engineering": "Do not fine-tune yet. {headline}",
    "rag": "Do not fine-tune for this. {headline}",
    "not_yet": "Not yet. {headline}",
}
NEXT_STEPS = {
    "fine_tune": ["Run the data audit phase on the delivered files.", "Agree acceptance criteria for the go/no-go."],
    "hybrid": ["Scope the retrieval pipeline.", "Run the data audit phase for the fine-tuning part."],
    "prompt_engineering": ["Write and document the best prompt; measure it in the baseline phase."],
    "rag": ["Scope a retrieval pipeline over the client's knowledge sources."],
    "not_yet": ["Collect and label more examples; re-run suitability when there are at least 100-200."],
}


def summary(r: SuitabilityResults) -> str:
    return r.headline


def what_to_tell_the_client(r: SuitabilityResults) -> str:
    low, high = r.timeline_weeks
    return TELL_CLIENT[r.recommendation].format(headline=r.headline, method=r.method.upper(),
                                                hosting=r.hosting.replace("_", " "), low=low, high=high)


def next_steps(r: SuitabilityResults) -> list[str]:
    return list(NEXT_STEPS[r.recommendation])


def questionnaire(run, interactive: bool) -> None:
    """With ``interactive`` (JupyterLab), show the ipywidgets questionnaire that edits engagement.yaml."""
    if not interactive:
        return
    from IPython.display import display

    from ftkit.questionnaire import questionnaire as build

    display(build(run.engagement.config_path))
