"""This period against the last, per entity: did the grade and the avoidable dollars move, and
why, where the ledger tells (cache hits rising, the model mix changing). Pure: it reads two
grades' stored `breakdown` facts (`efficiency/breakdown.py` `usage_facts`)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.money import format_usd

GRADE_ORDER = {"S": 5, "A": 4, "B": 3, "C": 2, "D": 1, "": 0}
MIX_POINTS = Decimal(20)  # a model's share of spend moving this many points is a mix change


@dataclass(frozen=True)
class Trend:
    previous_grade: str
    waste_change_usd: Decimal  # this period minus last (negative: less waste)
    direction: str  # "better", "worse" or "same"
    causes: tuple[str, ...]

    @property
    def text(self) -> str:
        grade = self.previous_grade or "not graded"
        change = format_usd(abs(self.waste_change_usd))
        moved = {"better": f"{change} less avoidable", "worse": f"{change} more avoidable"}
        head = f"last period {grade}; {moved.get(self.direction, 'no change')}"
        return head + (f" ({'; '.join(self.causes)})" if self.causes else "")


def _shares(facts: dict) -> dict[str, Decimal]:
    spend = {k: Decimal(v) for k, v in facts.get("model_spend", {}).items()}
    total = sum(spend.values(), Decimal(0))
    return {k: v / total * 100 for k, v in spend.items()} if total else {}


def causes(previous: dict, current: dict) -> tuple[str, ...]:
    """What changed in how the calls were made, in words a finance owner can check."""
    found = []
    before, after = previous.get("cache_hits", 0), current.get("cache_hits", 0)
    if after > before:
        found.append(f"cache hits rose from {before} to {after}")
    elif after < before:
        found.append(f"cache hits fell from {before} to {after}")
    old, new = _shares(previous), _shares(current)
    for model in sorted(set(old) | set(new)):
        was, now = old.get(model, Decimal(0)), new.get(model, Decimal(0))
        if abs(now - was) >= MIX_POINTS:
            found.append(f"{model} went from {was:.0f}% to {now:.0f}% of spend")
    return tuple(found)


def compare(
    *,
    previous_grade: str,
    previous_waste: Decimal,
    previous_facts: dict,
    grade: str,
    waste: Decimal,
    facts: dict,
) -> Trend:
    change = waste - previous_waste
    rank_change = GRADE_ORDER[grade] - GRADE_ORDER[previous_grade]
    if change < 0 or (change == 0 and rank_change > 0):
        direction = "better"
    elif change > 0 or rank_change < 0:
        direction = "worse"
    else:
        direction = "same"
    return Trend(previous_grade, change, direction, causes(previous_facts, facts))
