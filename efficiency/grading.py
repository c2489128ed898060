"""Scores, grades and verdicts from the findings of `efficiency/signals.py` (the `Finding`
vocabulary is `efficiency/findings.py`). Pure, deterministic.

Score = 100 x (1 - waste_factor x weighted waste / spend), rounded half up, floored at 0;
a veto signal (thrashing) caps it at `veto_cap`. S >= 95, A >= 85, B >= 70, C >= 50, else D.
Verdict: S/A justified, B/C questionable, D or any veto wasteful.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from core.money import format_usd
from efficiency.conf import Thresholds
from efficiency.findings import (
    AGENT,
    CACHE_MISS,
    CONTEXT_BLOAT,
    DEPARTMENT,
    JUSTIFIED,
    MEMBER,
    MODEL_OVERKILL,
    OFF_HOURS,
    QUESTIONABLE,
    RETRY_STORM,
    SIGNAL_LABELS,
    THRASHING,
    WASTEFUL,
    ZERO,
    Finding,
    PriceFn,
    Row,
    group_by,
    money,
)
from efficiency.signals import (
    detect_cache_miss,
    detect_context_bloat,
    detect_model_overkill,
    detect_off_hours,
    detect_retry_storm,
    detect_thrashing,
)


@dataclass
class Grade:
    entity_kind: str
    entity_id: int
    requests: int
    spend_usd: Decimal
    saved_usd: Decimal
    waste_usd: Decimal
    score: int
    grade: str
    verdict: str
    reason: str
    capped_by: str
    findings: list[Finding]


@dataclass
class Result:
    findings: list[Finding]
    grades: list[Grade]
    rows: int
    spend_usd: Decimal
    saved_usd: Decimal


# --- grades -------------------------------------------------------------------------------


def grade_for(score: int) -> str:
    if score >= 95:
        return "S"
    if score >= 85:
        return "A"
    if score >= 70:
        return "B"
    if score >= 50:
        return "C"
    return "D"


def verdict_for(grade: str, vetoed: bool) -> str:
    if vetoed or grade == "D":
        return WASTEFUL
    return JUSTIFIED if grade in ("S", "A") else QUESTIONABLE


SIGNAL_WEIGHTS = {
    THRASHING: Decimal(1),
    MODEL_OVERKILL: Decimal(1),
    CACHE_MISS: Decimal(1),
    CONTEXT_BLOAT: Decimal(1),
    RETRY_STORM: Decimal(1),
    OFF_HOURS: Decimal(1),  # its per-request impact is already scaled by offhours_weight
}


def _grade_entity(
    kind: str, entity_id: int, rows: list[Row], findings: list[Finding], t: Thresholds
) -> Grade:
    spend = sum((r.cost_usd for r in rows), ZERO)
    saved = sum((r.saved_usd for r in rows), ZERO)
    worst: dict[str, Decimal] = {}
    for f in findings:
        weight = SIGNAL_WEIGHTS[f.kind]
        for request_id, impact in f.impact_by_request.items():
            worst[request_id] = max(worst.get(request_id, ZERO), impact * weight)
    waste = min(sum(worst.values(), ZERO), spend)
    ratio = waste / spend if spend else ZERO
    raw = Decimal(100) * (1 - min(Decimal(1), t.waste_factor * ratio))
    score = int(raw.to_integral_value(rounding=ROUND_HALF_UP))
    vetoes = [f for f in findings if f.veto]
    capped_by = ""
    if vetoes:  # recorded even when the waste alone already scored below the cap
        score, capped_by = min(score, t.veto_cap), vetoes[0].kind
    grade = grade_for(score)
    verdict = verdict_for(grade, bool(vetoes))
    ranked = sorted(findings, key=lambda f: (-f.veto, -f.impact_usd, f.kind, f.summary))
    return Grade(
        kind,
        entity_id,
        len(rows),
        money(spend),
        money(saved),
        money(waste),
        score,
        grade,
        verdict,
        _reason(verdict, spend, waste, rows, ranked),
        capped_by,
        ranked,
    )


def _reason(
    verdict: str, spend: Decimal, waste: Decimal, rows: list[Row], ranked: list[Finding]
) -> str:
    if not ranked or (verdict == JUSTIFIED and not waste):
        return f"{format_usd(spend)} over {len(rows)} calls with no waste signal."
    top = ranked[0]
    share = (waste / spend * 100).quantize(Decimal("1")) if spend else ZERO
    if verdict == JUSTIFIED:
        return (
            f"{format_usd(spend)} over {len(rows)} calls; only {share}% avoidable, "
            f"mostly {SIGNAL_LABELS[top.kind].lower()}."
        )
    if top.veto:
        return f"{SIGNAL_LABELS[top.kind]}: {top.summary}, which caps the grade."
    return (
        f"{share}% of {format_usd(spend)} ({format_usd(waste)}) was avoidable, mostly "
        f"{SIGNAL_LABELS[top.kind].lower()}: {top.summary}."
    )


def evaluate(
    rows: Iterable[Row], t: Thresholds, *, price: PriceFn, time_zone: str = "UTC"
) -> Result:
    ordered = sorted(rows, key=lambda r: (r.created_at, r.request_id))
    findings = [
        *detect_thrashing(ordered, t),
        *detect_model_overkill(ordered, t, price),
        *detect_cache_miss(ordered, t),
        *detect_context_bloat(ordered, t, price),
        *detect_retry_storm(ordered, t),
        *detect_off_hours(ordered, t, time_zone),
    ]
    grades = []
    for kind, attr in ((MEMBER, "member_id"), (AGENT, "agent_id"), (DEPARTMENT, "department_id")):
        by_entity = group_by(ordered, operator.attrgetter(attr))
        for entity_id, entity_rows in by_entity.items():
            if entity_id is None:
                continue
            mine = [f for f in findings if getattr(f, attr) == entity_id]
            grades.append(_grade_entity(kind, entity_id, entity_rows, mine, t))
    grades.sort(key=lambda g: (g.entity_kind, -g.score, -g.spend_usd, g.entity_id))
    return Result(
        findings=findings,
        grades=grades,
        rows=len(ordered),
        spend_usd=money(sum((r.cost_usd for r in ordered), ZERO)),
        saved_usd=money(sum((r.saved_usd for r in ordered), ZERO)),
    )
