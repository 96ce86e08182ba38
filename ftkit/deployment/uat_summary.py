"""What the testers said: approval rate with a confidence interval, per tester and per slice, and the worst-rated
inputs, from the UAT feedback log (``ftkit monitor``'s feedback summary and the report's UAT section).

Counting rules:

- a rated answer is one request id; when a tester rates the same answer twice, the last rating counts;
- approved = thumbs up. The rate is approved / rated, with a 95 % **Wilson score** interval
  (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``): unlike the normal approximation it stays
  inside [0, 1] and keeps its coverage at the 20-200 ratings a UAT round collects;
- a slice is the label the model's answer carries (``task.label_field`` / classification, derived exactly as
  the data audit derives training labels), else the length of the user's input in bands of characters;
- worst-rated inputs: the user inputs with the most thumbs-down (ties: fewest thumbs-up), shown as PII-masked
  excerpts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftkit.deployment.uat_log import read_lines

CONFIDENCE = 0.95  # two-sided level of the approval-rate interval
WORST_SHOWN = 5  # worst-rated inputs listed
EXCERPT_CHARS = 80  # characters of each worst-rated input shown (PII masked)
LENGTH_BANDS = ((200, "short (< 200 chars)"), (1000, "medium (200-999 chars)"), (None, "long (>= 1000 chars)"))


def wilson_interval(approved: int, rated: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of approved / rated (scipy); (nan, nan) with no ratings.

    >>> [round(x, 3) for x in wilson_interval(7, 10)]
    [0.397, 0.892]
    """
    if rated == 0:
        return float("nan"), float("nan")
    from scipy.stats import binomtest

    ci = binomtest(approved, rated).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def latest_ratings(events: list[dict]) -> list[dict]:
    """One feedback event per request id: the last one written."""
    last: dict[str, dict] = {}
    for event in events:
        if event.get("event", "feedback") == "feedback" and event.get("request_id"):
            last.pop(event["request_id"], None)  # re-insert: order follows the latest rating
            last[event["request_id"]] = event
    return list(last.values())


def user_input(messages: list[dict]) -> str:
    return next((m.get("content", "") for m in reversed(messages or []) if m.get("role") == "user"), "")


def length_band(text: str) -> str:
    """The input's length band (LENGTH_BANDS).

    >>> length_band("hello")
    'short (< 200 chars)'
    """
    return next(name for limit, name in LENGTH_BANDS if limit is None or len(text) < limit)


def slice_of(event: dict, task_type: str = "", label_field: str = "") -> str:
    if task_type == "classification" or label_field:
        from ftkit.deployment.monitoring import label_of

        label = label_of(event.get("messages") or [], event.get("output") or "", task_type, label_field)
        return f"label {label}" if label is not None else "no label in the answer"
    return length_band(user_input(event.get("messages") or []))


def _rate_row(key: str, name: str, rows: list[dict]) -> dict:
    approved = sum(1 for r in rows if r["rating"] == "up")
    low, high = wilson_interval(approved, len(rows))
    return {key: name, "rated": len(rows), "approved": approved, "approval_rate": round(approved / len(rows), 3),
            "ci_low": round(low, 3), "ci_high": round(high, 3),
            "corrections": sum(1 for r in rows if r.get("correction"))}


def _groups(rows: list[dict], key) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(key(row), []).append(row)
    return dict(sorted(out.items()))


@dataclass
class FeedbackSummary:
    requests: int
    rated: int
    approved: int
    ci: tuple[float, float]
    testers: list[str]
    per_tester: list[dict] = field(default_factory=list)
    per_slice: list[dict] = field(default_factory=list)
    worst: list[dict] = field(default_factory=list)
    corrections: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def approval_rate(self) -> float | None:
        return self.approved / self.rated if self.rated else None

    def headline(self) -> str:
        if not self.rated:
            return f"{self.requests} UAT requests, none rated yet."
        low, high = self.ci
        return (f"{self.approved} of {self.rated} rated answers approved ({self.approval_rate:.0%}, "
                f"{CONFIDENCE:.0%} Wilson CI {low:.0%}-{high:.0%}) by {len(self.testers)} tester(s); "
                f"{self.corrections} corrected answer(s) collected; {self.requests} requests in all.")

    def to_dict(self) -> dict:
        return {"requests": self.requests, "rated": self.rated, "approved": self.approved,
                "approval_rate": self.approval_rate, "ci": list(self.ci), "ci_method": "wilson",
                "confidence": CONFIDENCE, "testers": self.testers, "per_tester": self.per_tester,
                "per_slice": self.per_slice, "worst": self.worst, "corrections": self.corrections,
                "notes": self.notes, "headline": self.headline()}


def summarise(feedback_events: list[dict], request_events: list[dict] | None = None, task_type: str = "",
              label_field: str = "") -> FeedbackSummary:
    from ftkit.data.pii import masked_excerpt

    rated = latest_ratings(feedback_events)
    requests = [e for e in request_events or [] if e.get("event", "request") == "request"]
    approved = sum(1 for r in rated if r["rating"] == "up")
    testers = sorted({str(e.get("tester")) for e in rated + requests if e.get("tester")})
    worst = []
    for text, rows in _groups(rated, lambda r: user_input(r.get("messages") or [])).items():
        down = sum(1 for r in rows if r["rating"] == "down")
        if down:
            worst.append({"input": masked_excerpt(text, 0, EXCERPT_CHARS), "down": down, "up": len(rows) - down,
                          "last_comment": masked_excerpt(rows[-1].get("comment") or "", 0, EXCERPT_CHARS)})
    worst.sort(key=lambda w: (-w["down"], w["up"], w["input"]))
    return FeedbackSummary(
        requests=len(requests), rated=len(rated), approved=approved, ci=wilson_interval(approved, len(rated)),
        testers=testers,
        per_tester=[_rate_row("tester", t, rows) for t, rows in _groups(rated, lambda r: str(r.get("tester"))).items()],
        per_slice=[_rate_row("slice", s, rows) for s, rows in
                   _groups(rated, lambda r: slice_of(r, task_type, label_field)).items()],
        worst=worst[:WORST_SHOWN], corrections=sum(1 for r in rated if r.get("correction")))


def engagement_summary(engagement) -> FeedbackSummary | None:
    """The engagement's summary (None when nobody has used ``ftkit serve`` yet)."""
    from ftkit.config import load_config
    from ftkit.deployment.uat_log import FEEDBACK_FILE

    config = load_config(engagement.config_path)
    feedback_path = engagement.path / FEEDBACK_FILE
    request_path = engagement.path / config.deployment.uat_log if config.deployment.uat_log else None
    if not feedback_path.is_file() and not (request_path and request_path.is_file()):
        return None
    feedback, notes = read_lines(feedback_path)
    requests, more = read_lines(request_path) if request_path else ([], [])
    summary = summarise(feedback, requests, config.task.type, config.task.label_field)
    summary.notes = notes + more
    return summary


def feedback_path(engagement) -> Path:
    from ftkit.deployment.uat_log import FEEDBACK_FILE

    return engagement.path / FEEDBACK_FILE
