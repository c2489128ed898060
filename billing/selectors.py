"""Reads for budgets and alerts: which budgets a member may see, and a budget's live status
(spent + in-flight reservations this period, from the Redis counters the gateway keeps)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.db.models import Q, QuerySet

from billing.models import Alert, Budget, BudgetRequest, RequestStatus
from billing.services.counters import ledger_total
from core.money import NANOS_PER_USD, usd_exact
from core.periods import period_bounds
from core.rediskeys import budget_counter
from gateway.models import GatewayKey
from workspaces.models import Agent, Member, Role, Workspace


def member_scope_filter(member: Member) -> Q:
    """Budgets on this member's own chain: their keys, agents, themselves, their department,
    and the workspace."""
    agent_ids = list(
        Agent.objects.filter(workspace_id=member.workspace_id, owner=member).values_list(
            "id", flat=True
        )
    )
    key_ids = list(
        GatewayKey.objects.filter(workspace_id=member.workspace_id)
        .filter(Q(member=member) | Q(agent_id__in=agent_ids))
        .values_list("id", flat=True)
    )
    q = (
        Q(scope_type="workspace")
        | Q(scope_type="member", scope_id=member.pk)
        | Q(scope_type="agent", scope_id__in=agent_ids)
        | Q(scope_type="key", scope_id__in=key_ids)
    )
    if member.department_id:
        q |= Q(scope_type="department", scope_id=member.department_id)
    return q


def budgets_visible(
    *, member: Member, queryset: QuerySet[Budget] | None = None
) -> QuerySet[Budget]:
    qs = (
        queryset
        if queryset is not None
        else Budget.objects.filter(workspace_id=member.workspace_id)
    )
    if member.role == Role.MEMBER:
        qs = qs.filter(member_scope_filter(member))
    return qs


def alerts_visible(*, member: Member, queryset: QuerySet[Alert] | None = None) -> QuerySet[Alert]:
    qs = (
        queryset if queryset is not None else Alert.objects.filter(workspace_id=member.workspace_id)
    )
    if member.role == Role.MEMBER:
        qs = qs.filter(budget__in=budgets_visible(member=member))
    return qs


def active_increases(
    *, workspace_id: int, now: float | None = None
) -> dict[int, list[tuple[int, datetime]]]:
    """Approved budget requests running at `now`, by budget: (nano-USD, until)."""
    at = datetime.fromtimestamp(now or time.time(), tz=UTC)
    found: dict[int, list[tuple[int, datetime]]] = {}
    rows = BudgetRequest.objects.filter(
        workspace_id=workspace_id, status=RequestStatus.APPROVED, until__gt=at
    ).values_list("budget_id", "approved_usd", "until")
    for budget_id, approved, until in rows:
        found.setdefault(budget_id, []).append((int((approved or 0) * NANOS_PER_USD), until))
    return found


@dataclass
class BudgetStatus:
    period_key: str
    period_start: datetime | None
    resets_at: datetime | None
    used: int  # counter units (nano-USD for money budgets)
    reserved: int
    live: bool  # False: no counter in Redis yet (no call this period, or Redis restarted)
    increase: int = 0  # approved temporary increases running now (nano-USD), above the base
    increase_until: datetime | None = None  # when the first of them ends

    def as_dict(self, budget: Budget) -> dict:
        def fmt(units: int) -> str:
            if budget.is_money:
                return usd_exact(int(units))  # exact: an API value, not a display
            return str(units)

        limit = budget.limit_units + self.increase
        return {
            "period_key": self.period_key,
            "period_start": self.period_start.isoformat() if self.period_start else None,
            "resets_at": self.resets_at.isoformat() if self.resets_at else None,
            "used": fmt(self.used),
            "reserved": fmt(self.reserved),
            "remaining": fmt(max(0, limit - self.used - self.reserved)),
            "percent": round(100 * self.used / limit, 2) if limit else None,
            "live": self.live,
            "base_limit": fmt(budget.limit_units),
            "increase": fmt(self.increase),
            "increase_until": self.increase_until.isoformat() if self.increase_until else None,
        }


def budget_statuses(
    *, workspace: Workspace, budgets: list[Budget], client: redis.Redis, now: float | None = None
) -> dict[int, BudgetStatus]:
    """Live status of many budgets in one Redis round trip."""
    now = now or time.time()
    periods: dict[int, tuple[str, datetime | None, datetime | None]] = {}
    pipe = client.pipeline(transaction=False)
    for budget in budgets:
        if budget.metric in ("request_usd", "rpm"):
            periods[budget.pk] = ("request", None, None)
            pipe.hmget("-", "spent", "reserved")
            continue
        key, start, end = period_bounds(budget.period, workspace.time_zone, now)
        periods[budget.pk] = (key, start, end)
        pipe.hmget(budget_counter(workspace.pk, budget.pk, key), "spent", "reserved")
    try:
        rows = pipe.execute()
    except redis.RedisError:
        rows = [[None, None] for _ in budgets]
    out = {}
    increases = active_increases(workspace_id=workspace.pk, now=now)
    for budget, (spent, reserved) in zip(budgets, rows, strict=True):
        key, start, end = periods[budget.pk]
        if spent is None and budget.metric not in ("request_usd", "rpm"):
            # No live counter: the ledger is the record (what the gateway would rebuild).
            spent = ledger_total(
                workspace_id=workspace.pk,
                metric=budget.metric,
                scope_type=budget.scope_type,
                scope_id=budget.scope_id,
                scope_key=budget.scope_key,
                model=budget.model_filter or None,
                start=start,
                end=end,
            )
            reserved = 0
            live = False
        else:
            live = spent is not None
        out[budget.pk] = BudgetStatus(
            period_key=key,
            period_start=start,
            resets_at=end,
            used=int(spent or 0),
            reserved=int(reserved or 0),
            live=live,
            increase=sum(n for n, _u in increases.get(budget.pk, ())),
            increase_until=min((u for _n, u in increases.get(budget.pk, ())), default=None),
        )
    return out
