"""The vocabulary of the efficiency signals: the ledger `Row` they read, the `Finding` they
give, signal and verdict names, and the small exact helpers they share. Pure, like the signals
(`efficiency/signals.py`)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

ZERO = Decimal(0)
LEDGER_PLACES = Decimal("1e-12")  # the ledger's precision: amounts are stored exactly
EVIDENCE_LIMIT = 50  # request ids kept per finding; counts and dollars cover all of them

THRASHING = "thrashing"
MODEL_OVERKILL = "model_overkill"
CACHE_MISS = "cache_miss"
CONTEXT_BLOAT = "context_bloat"
RETRY_STORM = "retry_storm"
OFF_HOURS = "off_hours"

SIGNAL_LABELS = {
    THRASHING: "Agent thrashing",
    MODEL_OVERKILL: "Model overkill",
    CACHE_MISS: "Cache miss",
    CONTEXT_BLOAT: "Context bloat",
    RETRY_STORM: "Retry storm",
    OFF_HOURS: "Off-hours burst",
}
VETO_SIGNALS = frozenset({THRASHING})

MEMBER, AGENT, DEPARTMENT = "member", "agent", "department"
JUSTIFIED, QUESTIONABLE, WASTEFUL = "justified", "questionable", "wasteful"

# Price of a call on another model: (provider, model, input_tokens, output_tokens) -> USD or None.
PriceFn = Callable[[str, str, int, int], Decimal | None]


@dataclass(frozen=True)
class Row:
    request_id: str
    created_at: datetime
    member_id: int | None = None
    agent_id: int | None = None
    department_id: int | None = None
    session_id: str = ""
    provider: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = ZERO
    saved_usd: Decimal = ZERO
    cache_hit: bool = False
    status_code: int = 200
    error_type: str = ""
    stream: bool = False
    fingerprint: str = ""

    @property
    def owner(self) -> tuple[int | None, int | None, int | None]:
        return (self.member_id, self.agent_id, self.department_id)

    @property
    def failed(self) -> bool:
        return self.status_code >= 400 or bool(self.error_type)

    @property
    def paid(self) -> bool:
        return not self.cache_hit and not self.failed and self.cost_usd > 0


@dataclass
class Finding:
    kind: str
    member_id: int | None
    agent_id: int | None
    department_id: int | None
    summary: str
    impact_by_request: dict[str, Decimal]
    facts: dict = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        kind: str,
        owner: tuple,
        *,
        summary: str,
        impact_by_request: dict[str, Decimal],
        facts: dict,
    ) -> Finding:
        member_id, agent_id, department_id = owner
        return cls(kind, member_id, agent_id, department_id, summary, impact_by_request, facts)

    @property
    def veto(self) -> bool:
        return self.kind in VETO_SIGNALS

    @property
    def impact_usd(self) -> Decimal:
        return sum(self.impact_by_request.values(), ZERO)

    @property
    def request_ids(self) -> list[str]:
        return list(self.impact_by_request)

    def evidence(self) -> dict:
        return {
            **self.facts,
            "request_count": len(self.impact_by_request),
            "request_ids": self.request_ids[:EVIDENCE_LIMIT],
            "impact_usd": str(money(self.impact_usd)),
        }


def money(value: Decimal) -> Decimal:
    return value.quantize(LEDGER_PLACES, rounding=ROUND_HALF_UP)


def short_fp(fingerprint: str) -> str:
    return fingerprint[:12]


def group_by(rows: Iterable[Row], key: Callable[[Row], Any]) -> dict[Any, list[Row]]:
    """Groups in order of first appearance: deterministic, since `evaluate` sorts the rows."""
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return dict(groups)


def median_without(ordered: list[int], value: int) -> Decimal:
    """Median of `ordered` (sorted) with one occurrence of `value` left out, in O(log n)."""
    skip = bisect.bisect_left(ordered, value)

    def at(k: int) -> int:
        return ordered[k if k < skip else k + 1]

    n = len(ordered) - 1
    if n % 2:
        return Decimal(at(n // 2))
    return Decimal(at(n // 2 - 1) + at(n // 2)) / 2


def fills_cache(group: list[Row], index: int) -> bool:
    """A paid call answered next by a cache hit on the same request (`group`: one request's
    calls in time order) filled the gateway's response cache: the cost of the cache, not waste."""
    row = group[index]
    return row.paid and index + 1 < len(group) and group[index + 1].cache_hit


def who_label(owner: tuple) -> str:
    member_id, agent_id, _ = owner
    if agent_id is not None:
        return f"agent #{agent_id}"
    return f"member #{member_id}" if member_id is not None else "unattributed calls"
