"""Budget counters rebuilt from the ledger (the system of record) when Redis lost them.

Called by the gateway's Enforcer through `asyncio.to_thread` (see `gateway.loader
.ledger_loader`) when its script reports a missing counter, before the scope's next call is
admitted. Totals are in the counter's units: nano-USD (rounded up, so a rebuilt counter never
under-reads spend), requests, or tokens.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Concat

from billing.models import Budget, UsageRecord
from core.money import NANOS_PER_USD
from core.periods import period_bounds
from core.rediskeys import budget_counter
from workspaces.tenancy import workspace_scope

_SCOPE_FIELD = {
    "key": "gateway_key_id",
    "agent": "agent_id",
    "member": "member_id",
    "department": "department_id",
}


def glob_to_regex(pattern: str) -> str:
    """`gpt-4o*` -> `^gpt\\-4o.*$` (Postgres and Python regex alike)."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char.isalnum():
            parts.append(char)
        else:
            parts.append("\\" + char)
    return "^" + "".join(parts) + "$"


def _scope_filter(
    qs: QuerySet, scope_type: str, scope_id: int, workspace_id: int, scope_key: str = ""
) -> QuerySet:
    if scope_type in ("property", "customer"):
        if not scope_key or (scope_type == "property" and "=" not in scope_key):
            return qs.none()
        # The call's properties (Alephant-Customer is recorded as the property `customer`).
        name, value = (
            scope_key.split("=", 1) if scope_type == "property" else ("customer", scope_key)
        )
        return qs.filter(properties__contains={name: value})
    if scope_type == "workspace":
        return qs if int(scope_id) == int(workspace_id) else qs.none()
    field = _SCOPE_FIELD[scope_type]
    if field == "gateway_key_id" and not any(
        f.name == "gateway_key" for f in UsageRecord._meta.get_fields()
    ):
        # The ledger has no key column yet: never under-read a key budget; fall back to nothing
        # rather than guessing (the key budget then starts from its live counter).
        return qs.none()
    if scope_type == "department":
        # A call is recorded under its member's department; an agent placed in another
        # department charged that one too (gateway/snapshots.py), so its calls count here.
        return qs.filter(Q(department_id=scope_id) | Q(agent__department_id=scope_id))
    return qs.filter(**{field: scope_id})


def _model_filter(qs: QuerySet, pattern: str | None) -> QuerySet:
    if not pattern:
        return qs
    regex = glob_to_regex(pattern)
    qs = qs.annotate(_qualified=Concat(F("provider"), Value("/"), F("model")))
    return qs.filter(Q(model__regex=regex) | Q(_qualified__regex=regex))


def ledger_total(
    *,
    workspace_id: int,
    metric: str,
    scope_type: str,
    scope_id: int,
    model: str | None,
    start: datetime | None,
    end: datetime | None,
    scope_key: str = "",
) -> int:
    qs = UsageRecord.objects.filter(workspace_id=workspace_id)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lt=end)
    qs = _model_filter(_scope_filter(qs, scope_type, scope_id, workspace_id, scope_key), model)
    if metric == "usd":
        total = qs.aggregate(total=Sum("cost_usd"))["total"] or Decimal(0)
        return math.ceil(total * NANOS_PER_USD)
    if metric == "requests":
        # Requests that were admitted and reached a provider answer; refusals cost no quota.
        return int(qs.filter(status_code__lt=400).aggregate(n=Count("id"))["n"] or 0)
    if metric == "tokens":
        agg = qs.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
        return int((agg["i"] or 0) + (agg["o"] or 0))
    raise ValueError(f"no counter for metric {metric!r}")


def _scope_key(item: dict) -> str:
    """A property/customer budget's value, read here by budget id (the gateway's rebuild item
    names the budget; the value is the budget's own, not the call's)."""
    if item["scope_type"] not in ("property", "customer"):
        return ""
    found = Budget.objects.filter(pk=int(item["budget_id"])).values_list("scope_key", flat=True)
    return found.first() or ""  # a deleted budget: matches nothing (`_scope_filter`)


def counters_from_ledger(*, workspace_id: int, items: list[dict]) -> list[int]:
    """One total per item ({"metric","scope_type","scope_id","model","start","end"})."""
    with workspace_scope(workspace_id):
        return [
            ledger_total(
                workspace_id=workspace_id,
                metric=item.get("metric", "usd"),
                scope_type=item["scope_type"],
                scope_id=int(item["scope_id"]),
                scope_key=_scope_key(item),
                model=item.get("model"),
                start=item.get("start"),
                end=item.get("end"),
            )
            for item in items
        ]


def counters_from_ledger_in_thread(*, workspace_id: int, items: list[dict]) -> list[int]:
    """For `asyncio.to_thread` (the gateway's loader): a pool thread must not keep a database
    connection open after its rare rebuild, so close it when done."""
    try:
        return counters_from_ledger(workspace_id=workspace_id, items=items)
    finally:
        connection.close()


# Raise a live counter to the ledger's total, never lower it: the ledger lags the counters (usage
# events wait in the queue), so a lower ledger total is normal; a higher one means usage the
# counter missed (a settle lost to a Redis error). Atomic, so it races no settle.
_RAISE_TO = """
local spent = redis.call('HGET', KEYS[1], 'spent')
if not spent then return -1 end
local missing = tonumber(ARGV[1]) - tonumber(spent)
if missing > 0 then redis.call('HINCRBY', KEYS[1], 'spent', missing) return missing end
return 0
"""


def counters_reconcile(*, workspace, client, now: float | None = None) -> dict[int, int]:
    """Beat task body: for each counted budget of the workspace, raise this period's counter to
    the ledger total if it is behind. Returns {budget id: units added} for the corrected ones."""
    now = now or time.time()
    raise_to = client.register_script(_RAISE_TO)
    fixed: dict[int, int] = {}
    for budget in Budget.objects.filter(
        workspace=workspace, metric__in=["usd", "requests", "tokens"]
    ):
        key, start, end = period_bounds(budget.period, workspace.time_zone, now)
        total = ledger_total(
            workspace_id=workspace.pk,
            metric=budget.metric,
            scope_type=budget.scope_type,
            scope_id=budget.scope_id,
            scope_key=budget.scope_key,
            model=budget.model_filter or None,
            start=start,
            end=end,
        )
        added = int(raise_to(keys=[budget_counter(workspace.pk, budget.pk, key)], args=[total]))
        if added > 0:
            fixed[budget.pk] = added
    return fixed
