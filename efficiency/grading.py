"""Scores, grades and verdicts from the findings of `efficiency/signals.py` (the `Finding`
vocabulary is `efficiency/findings.py`). Pure, deterministic.

Materiality first: a finding counts only when its dollars reach the signal floor, and an entity
is graded only when its spend reaches the grade floor (below it: "not enough spend to grade").
Score = 100 x (1 - waste_factor x weighted waste / spend), rounded half up, floored at 0;
a veto signal (thrashing) caps an agent's or a member's own score at `veto_cap` (never a
department's: one small contributor must not cap everyone). S >= 95, A >= 85, B >= 70,
C >= 50, else D. Verdict: S/A justified, B/C questionable, D or any veto wasteful.
A member is graded on their own calls; their agents' waste is "via agents" beside it.
Ranking: by avoidable dollars, largest first.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from core.money import format_usd
from efficiency import breakdown as bd
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
    score: int | None  # None: not enough spend to grade
    grade: str
    verdict: str
    reason: str
    capped_by: str
    findings: list[Finding]
    breakdown: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Floors:
    grade_usd: Decimal
    signal_usd: Decimal

    def as_dict(self) -> dict[str, str]:
        return {"grade_floor_usd": str(self.grade_usd), "signal_floor_usd": str(self.signal_usd)}


@dataclass
class Result:
    findings: list[Finding]  # the material ones
    grades: list[Grade]
    rows: int
    spend_usd: Decimal
    saved_usd: Decimal
    floors: Floors
    immaterial: int  # findings left out: their dollars were below the signal floor


# --- floors and grades ---------------------------------------------------------------------


def floors_for(
    t: Thresholds,
    workspace_spend: Decimal,
    *,
    grade_min_usd: Decimal | None = None,
    signal_min_usd: Decimal | None = None,
) -> Floors:
    """The workspace's own floors when set; else the larger of the absolute default and the
    default share of the workspace's spend in the period."""
    grade = grade_min_usd
    if grade is None:
        grade = max(t.grade_min_usd, t.grade_min_share * workspace_spend)
    signal = signal_min_usd
    if signal is None:
        signal = max(t.signal_min_usd, t.signal_min_share * workspace_spend)
    return Floors(money(grade), money(signal))


def is_material(finding: Finding, floors: Floors) -> bool:
    impact = finding.impact_usd
    return impact > 0 and impact >= floors.signal_usd


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


@dataclass
class _Part:
    """One graded set of calls: an agent's, a member's own, or a department's."""

    rows: list[Row]
    spend: Decimal
    waste: Decimal
    score: int | None
    capped_by: str
    findings: list[Finding]  # largest dollars first


def _by_dollars(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.impact_usd, -f.veto, f.kind, f.summary))


def _part(
    rows: list[Row],
    findings: list[Finding],
    worst: dict[str, Decimal],
    t: Thresholds,
    floors: Floors,
    *,
    veto: bool,
) -> _Part:
    spend = sum((r.cost_usd for r in rows), ZERO)
    waste = bd.waste_of(rows, worst)
    ranked = _by_dollars(findings)
    if not rows or spend < floors.grade_usd:
        return _Part(rows, spend, waste, None, "", ranked)
    ratio = waste / spend if spend else ZERO
    raw = Decimal(100) * (1 - min(Decimal(1), t.waste_factor * ratio))
    score = int(raw.to_integral_value(rounding=ROUND_HALF_UP))
    capped_by = ""
    vetoes = [f for f in ranked if f.veto] if veto else []
    if vetoes:  # recorded even when the waste alone already scored below the cap
        score, capped_by = min(score, t.veto_cap), vetoes[0].kind
    return _Part(rows, spend, waste, score, capped_by, ranked)


def _part_text(part: _Part, floors: Floors, *, whose: str = "") -> str:
    """Dollars at stake first, then the ratio, then the largest signal."""
    calls = f"{len(part.rows)} {whose}calls"
    if part.score is None:
        return (
            f"Not enough spend to grade: {format_usd(part.spend)} over {calls}, below the "
            f"{format_usd(floors.grade_usd)} floor."
        )
    if not part.waste or not part.findings:
        return f"No avoidable spend in {format_usd(part.spend)} over {calls}."
    top = part.findings[0]
    text = (
        f"{format_usd(part.waste)} avoidable ({bd.percent(part.waste, part.spend)}% of "
        f"{format_usd(part.spend)} over {calls}), mostly {SIGNAL_LABELS[top.kind].lower()}: "
        f"{top.summary}."
    )
    if part.capped_by:
        text += f" {SIGNAL_LABELS[part.capped_by]} caps the grade at D."
    return text


def _largest_text(contribs: list[dict], findings: list[Finding], total: Decimal) -> str:
    """Names the contributor with the largest share of the waste, and its largest signal."""
    top = contribs[0]
    attr = "agent_id" if top["kind"] == "agent" else "member_id"
    own = [f for f in findings if getattr(f, attr) == top["id"]]
    if top["kind"] == "member":
        own = [f for f in own if f.agent_id is None]
    signal = f": {SIGNAL_LABELS[_by_dollars(own)[0].kind].lower()}" if own else ""
    return (
        f"{format_usd(total)} avoidable; largest contributor {top['kind']} #{top['id']} "
        f"({top['share_percent']}%, {format_usd(Decimal(top['waste_usd']))}){signal}."
    )


def _grade(kind: str, entity_id: int, rows: list[Row], part: _Part, waste: Decimal,
           reason: str, breakdown: dict) -> Grade:  # fmt: skip
    grade = grade_for(part.score) if part.score is not None else ""
    verdict = verdict_for(grade, bool(part.capped_by)) if grade else ""
    breakdown = {**breakdown, **bd.usage_facts(rows)}
    return Grade(
        kind, entity_id, len(rows), money(sum((r.cost_usd for r in rows), ZERO)),
        money(sum((r.saved_usd for r in rows), ZERO)), money(waste), part.score, grade,
        verdict, reason, part.capped_by, part.findings, breakdown,
    )  # fmt: skip


def _agent_grade(
    agent_id: int,
    rows: list[Row],
    findings: list[Finding],
    worst: dict[str, Decimal],
    t: Thresholds,
    floors: Floors,
) -> Grade:
    part = _part(rows, [f for f in findings if f.agent_id == agent_id], worst, t, floors,
                 veto=True)  # fmt: skip
    return _grade(AGENT, agent_id, rows, part, part.waste, _part_text(part, floors), {})


def _member_grade(
    member_id: int,
    rows: list[Row],
    findings: list[Finding],
    worst: dict[str, Decimal],
    t: Thresholds,
    floors: Floors,
) -> Grade:
    own_rows = [r for r in rows if r.agent_id is None]
    own_findings = [f for f in findings if f.member_id == member_id and f.agent_id is None]
    part = _part(own_rows, own_findings, worst, t, floors, veto=True)
    contribs = bd.contributors(rows, worst)
    total = sum((Decimal(c["waste_usd"]) for c in contribs), ZERO)
    via = [c for c in contribs if c["kind"] == "agent"]
    reason = "Own calls: " + _part_text(part, floors, whose="own ")
    if total and any(c["kind"] == "agent" and Decimal(c["waste_usd"]) for c in contribs):
        mine = [f for f in findings if f.member_id == member_id]
        shares = ", ".join(bd.contributor_text(c) for c in via if Decimal(c["waste_usd"]))
        reason = f"{_largest_text(contribs, mine, total)} {reason} Via agents: {shares}."
    own = {"requests": len(own_rows), "spend_usd": str(money(part.spend)),
           "waste_usd": str(money(part.waste))}  # fmt: skip
    return _grade(MEMBER, member_id, rows, part, total, reason,
                  {"own": own, "via_agents": via, "contributors": contribs})  # fmt: skip


def _department_grade(
    dept_id: int,
    rows: list[Row],
    findings: list[Finding],
    worst: dict[str, Decimal],
    t: Thresholds,
    floors: Floors,
) -> Grade:
    mine = [f for f in findings if f.department_id == dept_id]
    part = _part(rows, mine, worst, t, floors, veto=False)
    contribs = bd.contributors(rows, worst)
    if part.score is not None and part.waste and contribs:
        reason = (
            f"{_largest_text(contribs, mine, part.waste)[:-1]}; "
            f"{bd.percent(part.waste, part.spend)}% of {format_usd(part.spend)}."
        )
    else:
        reason = _part_text(part, floors)
    return _grade(DEPARTMENT, dept_id, rows, part, part.waste, reason,
                  {"contributors": contribs})  # fmt: skip


_Maker = Callable[[int, list[Row], list[Finding], dict[str, Decimal], Thresholds, Floors], Grade]


def evaluate(
    rows: Iterable[Row],
    t: Thresholds,
    *,
    price: PriceFn,
    time_zone: str = "UTC",
    grade_min_usd: Decimal | None = None,
    signal_min_usd: Decimal | None = None,
) -> Result:
    ordered = sorted(rows, key=lambda r: (r.created_at, r.request_id))
    spend = sum((r.cost_usd for r in ordered), ZERO)
    floors = floors_for(t, spend, grade_min_usd=grade_min_usd, signal_min_usd=signal_min_usd)
    found = [
        *detect_thrashing(ordered, t),
        *detect_model_overkill(ordered, t, price),
        *detect_cache_miss(ordered, t),
        *detect_context_bloat(ordered, t, price),
        *detect_retry_storm(ordered, t),
        *detect_off_hours(ordered, t, time_zone),
    ]
    findings = [f for f in found if is_material(f, floors)]
    worst = bd.worst_by_request(findings, SIGNAL_WEIGHTS)
    grades = []
    makers: tuple[tuple[str, _Maker], ...] = (
        ("member_id", _member_grade),
        ("agent_id", _agent_grade),
        ("department_id", _department_grade),
    )
    for attr, make in makers:
        for entity_id, entity_rows in group_by(ordered, operator.attrgetter(attr)).items():
            if entity_id is not None:
                grades.append(make(entity_id, entity_rows, findings, worst, t, floors))
    # Dollars first: the most avoidable spend ranks first; the grade stands beside it.
    grades.sort(key=lambda g: (g.entity_kind, -g.waste_usd, -g.spend_usd, g.entity_id))
    return Result(
        findings=findings,
        grades=grades,
        rows=len(ordered),
        spend_usd=money(spend),
        saved_usd=money(sum((r.saved_usd for r in ordered), ZERO)),
        floors=floors,
        immaterial=len(found) - len(findings),
    )
