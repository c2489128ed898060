"""The budgets on a drill-down's chain (key -> agent -> member -> department -> workspace),
with the gateway's live used / reserved figures for the current period.

A member's own page shows their chain and their agents' and keys' caps, the same set the
budgets API lets them read (`billing.selectors.member_scope_filter`).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import redis
from django.db.models import Q
from django.utils import timezone

from attribution.budget_burn import Burn, budget_burns
from billing.models import Budget
from billing.selectors import budget_statuses, member_scope_filter
from core.money import nanos_to_decimal
from gateway.models import GatewayKey
from gateway.snapshots import redis_client
from workspaces.models import Agent, Department, Member, Workspace


def _upward(*, member_id=None, department_id=None, agent_id=None, key_id=None) -> Q:
    q = Q(scope_type="workspace")
    for scope, ident in (
        ("member", member_id),
        ("department", department_id),
        ("agent", agent_id),
        ("key", key_id),
    ):
        if ident:
            q |= Q(scope_type=scope, scope_id=ident)
    return q


def chain_filter(*, entity) -> Q | None:
    """Which budgets bind the entity a drill-down is about (None: not an entity page)."""
    if isinstance(entity, Member):
        return member_scope_filter(entity)
    if isinstance(entity, Agent):
        return _upward(
            member_id=entity.owner_id,
            department_id=entity.department_id or entity.owner.department_id,
            agent_id=entity.pk,
        ) | Q(
            scope_type="key",
            scope_id__in=GatewayKey.objects.filter(agent=entity).values_list("id", flat=True),
        )
    if isinstance(entity, Department):
        return _upward(department_id=entity.pk)
    if isinstance(entity, GatewayKey):
        owner = entity.member or (entity.agent.owner if entity.agent else None)
        return _upward(
            member_id=owner.pk if owner else None,
            department_id=owner.department_id if owner else None,
            agent_id=entity.agent_id,
            key_id=entity.pk,
        )
    return None


def _add_reservations(burns: list[Burn], *, workspace: Workspace, now: dt.datetime) -> None:
    live = [b for b in burns if not b.closed and not b.per_request and b.budget.metric != "rpm"]
    if not live:
        return
    try:
        statuses = budget_statuses(
            workspace=workspace,
            budgets=[b.budget for b in live],
            client=redis_client(),
            now=now.timestamp(),
        )
    except redis.RedisError:  # the page still shows the ledger figures
        return
    for burn in live:
        status = statuses.get(burn.budget.pk)
        if status is None or not status.live:
            continue
        units = status.reserved
        burn.reserved = nanos_to_decimal(units) if burn.money else Decimal(units)


def chain_burns(
    *, workspace: Workspace, entity, at: dt.datetime | None = None, now: dt.datetime | None = None
) -> list[Burn]:
    q = chain_filter(entity=entity)
    if q is None:
        return []
    now = now or timezone.now()
    burns = budget_burns(
        workspace=workspace, now=now, at=at, budgets=Budget.objects.filter(q, workspace=workspace)
    )
    _add_reservations(burns, workspace=workspace, now=now)
    return burns
