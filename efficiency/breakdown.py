"""Where an entity's waste happened, for the grade's `breakdown` and its reason. Pure.

A request's waste is the largest weighted impact any material finding gives it (so a loop that
is also a cache miss counts once). Contributors split that waste by who made the calls: an agent,
or a member's own calls (no agent). A member's grade reads its own calls; its agents' waste is
shown beside it as "via agents", each with its share.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from core.money import format_usd
from efficiency.findings import ZERO, Finding, Row, money

PERCENT = Decimal("0.1")


def worst_by_request(
    findings: Iterable[Finding], weights: dict[str, Decimal]
) -> dict[str, Decimal]:
    worst: dict[str, Decimal] = {}
    for f in findings:
        weight = weights[f.kind]
        for request_id, impact in f.impact_by_request.items():
            worst[request_id] = max(worst.get(request_id, ZERO), impact * weight)
    return worst


def waste_of(rows: list[Row], worst: dict[str, Decimal]) -> Decimal:
    """The rows' waste, never more than what they cost."""
    spend = sum((r.cost_usd for r in rows), ZERO)
    return min(sum((worst.get(r.request_id, ZERO) for r in rows), ZERO), spend)


def percent(part: Decimal, whole: Decimal) -> Decimal:
    if not whole:
        return ZERO
    return (part / whole * 100).quantize(PERCENT, rounding=ROUND_HALF_UP)


def contributor_ref(row: Row) -> tuple[str, int | None]:
    """Who made the call: the agent, else the member's own call."""
    if row.agent_id is not None:
        return ("agent", row.agent_id)
    return ("member", row.member_id)


def contributors(rows: list[Row], worst: dict[str, Decimal]) -> list[dict]:
    """Each contributor's spend, waste and share of the waste, largest waste first."""
    groups: dict[tuple[str, int | None], list[Row]] = {}
    for r in rows:
        groups.setdefault(contributor_ref(r), []).append(r)
    total = sum((waste_of(g, worst) for g in groups.values()), ZERO)
    out: list[dict[str, Any]] = []
    for (kind, entity_id), group in groups.items():
        if entity_id is None:
            continue
        waste = waste_of(group, worst)
        out.append(
            {
                "kind": kind,
                "id": entity_id,
                "requests": len(group),
                "spend_usd": str(money(sum((r.cost_usd for r in group), ZERO))),
                "waste_usd": str(money(waste)),
                "share_percent": str(percent(waste, total)),
            }
        )
    out.sort(key=lambda c: (-Decimal(c["waste_usd"]), -Decimal(c["spend_usd"]), c["kind"], c["id"]))
    return out


def usage_facts(rows: list[Row]) -> dict:
    """What a trend compares between two periods: cache hits and spend per model."""
    by_model: dict[str, Decimal] = {}
    for r in rows:
        if r.cost_usd:
            name = f"{r.provider}/{r.model}"
            by_model[name] = by_model.get(name, ZERO) + r.cost_usd
    return {
        "cache_hits": sum(1 for r in rows if r.cache_hit),
        "paid_calls": sum(1 for r in rows if r.paid),
        "model_spend": {k: str(money(v)) for k, v in sorted(by_model.items())},
    }


def contributor_text(c: dict) -> str:
    return f"{c['kind']} #{c['id']} {c['share_percent']}% ({format_usd(Decimal(c['waste_usd']))})"
