"""Each budget's burn in its current period, with a linear forecast at period end.

Reads `billing.Budget` (the budgets issue) and sums the rollups of the budget's scope. The
gateway's live Redis counter is what enforces; this is the finance view of the same spend,
at most one rollup interval behind.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum, Value
from django.db.models.functions import Concat
from django.utils import timezone

from attribution.models import Granularity, UsageRollup
from attribution.periods import period_for
from attribution.selectors import labels_for
from billing.models import Alert, Budget, UsageRecord
from workspaces.models import Workspace

SCOPE_DIMENSION = {
    "workspace": "workspace",
    "department": "department",
    "member": "member",
    "agent": "agent",
    "key": "gateway_key",
}


@dataclass
class Burn:
    budget: Any  # billing.Budget
    scope_label: str
    used: Decimal
    limit: Decimal
    percent: Decimal  # 0..(more than 100 when overshot)
    forecast: Decimal | None
    forecast_percent: Decimal | None
    period_label: str
    resets_at: dt.datetime | None
    ladder: list[int] = field(default_factory=list)
    money: bool = True
    per_request: bool = False
    blocked: bool = False  # the gateway refused calls this period (its 100% alert fired)

    @property
    def bar_percent(self) -> Decimal:
        return min(self.percent, Decimal(100))

    @property
    def forecast_bar_percent(self) -> Decimal:
        return min(self.forecast_percent or Decimal(0), Decimal(100))

    @property
    def state(self) -> str:
        if self.blocked or self.percent >= 100:
            return "blocked" if getattr(self.budget, "hard_stop", True) else "over"
        throttle = getattr(self.budget, "throttle_at", None)
        if throttle and self.percent >= throttle:
            return "throttled"
        if self.forecast_percent is not None and self.forecast_percent >= 100:
            return "forecast-over"
        return "ok"


def _window(budget, workspace: Workspace, now: dt.datetime):
    tz = workspace.tz
    if budget.period == "lifetime":
        return None, None, "lifetime"
    p = period_for(budget.period, now.astimezone(tz).date(), tz)
    return p.start_at, p.end_at, p.label


def _scope_label(budget, workspace: Workspace) -> str:
    if budget.scope_type == "workspace":
        return f"Workspace {workspace.name}"
    dim = SCOPE_DIMENSION.get(budget.scope_type, budget.scope_type)
    label = labels_for(workspace=workspace, dimension=dim, keys=[str(budget.scope_id)])
    return f"{budget.get_scope_type_display()} {label[str(budget.scope_id)]}"


def _used(budget, workspace: Workspace, start, end) -> Decimal:
    dim = SCOPE_DIMENSION.get(budget.scope_type)
    key = "" if budget.scope_type == "workspace" else str(budget.scope_id)
    if budget.model_filter:
        return _used_from_ledger(budget, workspace, start, end)
    qs = UsageRollup.objects.filter(
        workspace=workspace, granularity=Granularity.HOUR, dimension=dim, key=key
    )
    if start is not None:
        qs = qs.filter(bucket_start__gte=start, bucket_start__lt=end)
    agg = qs.aggregate(
        cost=Sum("cost_usd"),
        requests=Sum("requests"),
        tokens=Sum("input_tokens") + Sum("output_tokens"),
    )
    if budget.metric == "requests":
        return Decimal(agg["requests"] or 0)
    if budget.metric == "tokens":
        return Decimal(agg["tokens"] or 0)
    return agg["cost"] or Decimal(0)


def _glob_regex(glob: str) -> str:
    out = []
    for ch in glob:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return "^" + "".join(out) + "$"


def _used_from_ledger(budget, workspace: Workspace, start, end) -> Decimal:
    qs = UsageRecord.objects.filter(workspace=workspace)
    if budget.scope_type != "workspace":
        qs = qs.filter(**{f"{SCOPE_DIMENSION[budget.scope_type]}_id": budget.scope_id})
    if start is not None:
        qs = qs.filter(created_at__gte=start, created_at__lt=end)
    regex = _glob_regex(budget.model_filter)
    qs = qs.annotate(provider_model=Concat("provider", Value("/"), "model")).filter(
        Q(model__regex=regex) | Q(provider_model__regex=regex)
    )
    if budget.metric == "requests":
        return Decimal(qs.count())
    if budget.metric == "tokens":
        agg = qs.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
        return Decimal((agg["i"] or 0) + (agg["o"] or 0))
    return qs.aggregate(c=Sum("cost_usd"))["c"] or Decimal(0)


def _blocked(budget, start) -> bool:
    """The gateway refuses a call whose worst case does not fit, so a scope can be blocked
    below 100 % of its spend; its ledger-based 100 % alert says so."""
    qs = Alert.objects.filter(budget=budget, step__gte=100)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    return qs.exists()


def budget_burns(*, workspace: Workspace, now: dt.datetime | None = None) -> list[Burn]:
    """Every budget of the workspace, fullest first."""
    now = now or timezone.now()
    burns = []
    for budget in Budget.objects.filter(workspace=workspace):
        money = budget.metric in ("usd", "request_usd")
        limit = (budget.amount_usd if money else Decimal(budget.limit_count or 0)) or Decimal(0)
        start, end, label = _window(budget, workspace, now)
        if budget.metric == "request_usd":
            burns.append(
                Burn(
                    budget,
                    _scope_label(budget, workspace),
                    Decimal(0),
                    limit,
                    Decimal(0),
                    None,
                    None,
                    "per request",
                    None,
                    [],
                    True,
                    True,
                )
            )
            continue
        used = _used(budget, workspace, start, end)
        percent = (used * 100 / limit).quantize(Decimal("0.1")) if limit else Decimal(0)
        forecast = forecast_percent = None
        if start is not None:
            elapsed = (now - start).total_seconds()
            total = (end - start).total_seconds()
            if elapsed > 0:
                forecast = (used * Decimal(total) / Decimal(elapsed)).quantize(
                    Decimal("0.000001") if money else Decimal(1)
                )
                forecast_percent = (
                    (forecast * 100 / limit).quantize(Decimal("0.1")) if limit else None
                )
        burns.append(
            Burn(
                budget=budget,
                scope_label=_scope_label(budget, workspace),
                used=used,
                limit=limit,
                percent=percent,
                forecast=forecast,
                forecast_percent=forecast_percent,
                period_label=label,
                resets_at=end,
                ladder=list(budget.ladder or []),
                money=money,
                blocked=budget.hard_stop and _blocked(budget, start),
            )
        )
    burns.sort(key=lambda b: -b.percent)
    return burns
