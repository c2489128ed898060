"""Each budget's burn in a period (the current one, or any past one: the period close), with
the forecast of `attribution.forecasts` and, for the current period, the gateway's live
reservations.

Reads `billing.Budget` and sums the rollups of the budget's scope. The gateway's live Redis
counter is what enforces; this is the finance view of the same spend, at most one rollup
interval behind.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum, Value
from django.db.models.functions import Concat
from django.utils import timezone

from attribution.forecasts import Baseline, Forecast, budget_forecast
from attribution.models import Granularity, UsageRollup
from attribution.periods import Period, period_for
from attribution.selectors import labels_for
from billing.models import Alert, Budget, BudgetRequest, RequestStatus, UsageRecord
from billing.services.counters import glob_to_regex, ledger_total
from core.money import NANOS_PER_USD
from workspaces.models import Workspace

SCOPE_DIMENSION = {
    "workspace": "workspace",
    "department": "department",
    "member": "member",
    "agent": "agent",
    "key": "gateway_key",
}
SCOPE_SEGMENT = {"department": "departments", "member": "members", "agent": "agents", "key": "keys"}


@dataclass
class Burn:
    budget: Any  # billing.Budget
    scope_label: str
    used: Decimal
    limit: Decimal
    percent: Decimal  # 0..(more than 100 when overshot)
    period_label: str
    resets_at: dt.datetime | None
    ladder: list[int] = field(default_factory=list)
    money: bool = True
    per_request: bool = False
    blocked: bool = False  # the gateway refused calls this period (its 100% alert fired)
    closed: bool = False  # a past period: `used` is its final spend
    window: Period | None = None
    forecast_detail: Forecast | None = None
    reserved: Decimal = Decimal(0)  # held by calls in flight (live periods only)
    # Approved temporary increases running now (included in `limit`), and the first to end.
    increase: Decimal = Decimal(0)
    increase_until: dt.datetime | None = None

    @property
    def base_limit(self) -> Decimal:
        return self.limit - self.increase

    @property
    def forecast(self) -> Decimal | None:
        return self.forecast_detail.value if self.forecast_detail else None

    @property
    def forecast_percent(self) -> Decimal | None:
        if self.forecast is None or not self.limit:
            return None
        return (self.forecast * 100 / self.limit).quantize(Decimal("0.1"))

    @property
    def remaining(self) -> Decimal:
        return max(self.limit - self.used - self.reserved, Decimal(0))

    @property
    def bar_percent(self) -> Decimal:
        return min(self.percent, Decimal(100))

    @property
    def forecast_bar_percent(self) -> Decimal:
        return min(self.forecast_percent or Decimal(0), Decimal(100))

    @property
    def scope_url(self) -> str | None:
        segment = SCOPE_SEGMENT.get(self.budget.scope_type)
        return f"/spend/{segment}/{self.budget.scope_id}/" if segment else "/"

    @property
    def state(self) -> str:
        if self.blocked or self.percent >= 100:
            return "blocked" if getattr(self.budget, "hard_stop", True) else "over"
        if self.closed:
            return "closed"
        throttle = getattr(self.budget, "throttle_at", None)
        if throttle and self.percent >= throttle:
            return "throttled"
        detail = self.forecast_detail
        if detail is not None and self.limit and detail.uncapped >= self.limit:
            return "forecast-over"
        return "ok"


def budget_window(budget, workspace: Workspace, at: dt.datetime) -> Period | None:
    """The budget's own period holding the instant `at` (None for a lifetime budget)."""
    if budget.period == "lifetime":
        return None
    return period_for(budget.period, at.astimezone(workspace.tz).date(), workspace.tz)


def _baseline_window(window: Period) -> Period:
    """History the forecast blends in: the previous month, or the 7 days before the period."""
    if window.kind == "month":
        return window.previous()
    return Period("custom", window.start - dt.timedelta(days=7), window.start, window.tz)


def _scope_label(budget, workspace: Workspace) -> str:
    if budget.scope_key:  # property "<name>=<value>" or a customer id
        return f"{budget.get_scope_type_display()} {budget.scope_key}"
    if budget.scope_type == "workspace":
        return f"Workspace {workspace.name}"
    dim = SCOPE_DIMENSION.get(budget.scope_type, budget.scope_type)
    label = labels_for(workspace=workspace, dimension=dim, keys=[str(budget.scope_id)])
    return f"{budget.get_scope_type_display()} {label[str(budget.scope_id)]}"


def budget_used(budget, workspace: Workspace, start, end) -> Decimal:
    """Spend (or requests, tokens) of the budget's scope in [start, end); all time for None."""
    dim = SCOPE_DIMENSION.get(budget.scope_type)
    key = "" if budget.scope_type == "workspace" else str(budget.scope_id)
    if budget.scope_key and budget.metric in ("usd", "requests", "tokens"):
        # property / customer: no rollup dimension, read the ledger
        units = ledger_total(
            workspace_id=workspace.pk,
            metric=budget.metric,
            scope_type=budget.scope_type,
            scope_id=budget.scope_id,
            scope_key=budget.scope_key,
            model=budget.model_filter or None,
            start=start,
            end=end,
        )
        return Decimal(units) / NANOS_PER_USD if budget.metric == "usd" else Decimal(units)
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


def _used_from_ledger(budget, workspace: Workspace, start, end) -> Decimal:
    qs = UsageRecord.objects.filter(workspace=workspace)
    if budget.scope_type != "workspace":
        qs = qs.filter(**{f"{SCOPE_DIMENSION[budget.scope_type]}_id": budget.scope_id})
    if start is not None:
        qs = qs.filter(created_at__gte=start, created_at__lt=end)
    regex = glob_to_regex(budget.model_filter)
    qs = qs.annotate(provider_model=Concat("provider", Value("/"), "model")).filter(
        Q(model__regex=regex) | Q(provider_model__regex=regex)
    )
    if budget.metric == "requests":
        return Decimal(qs.count())
    if budget.metric == "tokens":
        agg = qs.aggregate(i=Sum("input_tokens"), o=Sum("output_tokens"))
        return Decimal((agg["i"] or 0) + (agg["o"] or 0))
    return qs.aggregate(c=Sum("cost_usd"))["c"] or Decimal(0)


def _blocked(budget, window: Period | None) -> bool:
    """The gateway refuses a call whose worst case does not fit, so a scope can be blocked
    below 100 % of its spend; its ledger-based 100 % alert says so."""
    qs = Alert.objects.filter(budget=budget, step__gte=100)
    if window is not None:
        qs = qs.filter(created_at__gte=window.start_at, created_at__lt=window.end_at)
    return qs.exists()


def _increases(budget, now: dt.datetime) -> tuple[Decimal, dt.datetime | None]:
    """Approved budget requests running now: their sum and the first end (billing/snapshots.py
    gives the gateway the same)."""
    rows = list(
        BudgetRequest.objects.filter(
            budget=budget, status=RequestStatus.APPROVED, until__gt=now
        ).values_list("approved_usd", "until")
    )
    # approved_usd is nullable only while a request is pending; an approved one always has it.
    total = sum((a for a, _ in rows if a is not None), Decimal(0))
    return total, min((u for _, u in rows), default=None)


def _burn(budget, workspace: Workspace, *, at: dt.datetime, now: dt.datetime) -> Burn:
    money = budget.metric in ("usd", "request_usd")
    limit = (budget.amount_usd if money else Decimal(budget.limit_count or 0)) or Decimal(0)
    increase, increase_until = (
        _increases(budget, now)
        if budget.metric == "usd" and at >= now - dt.timedelta(seconds=1)
        else (Decimal(0), None)
    )
    limit += increase
    label = _scope_label(budget, workspace)
    if budget.metric == "request_usd":
        return Burn(
            budget, label, Decimal(0), limit, Decimal(0), "per request", None, [], True, True
        )
    window = budget_window(budget, workspace, at)
    start, end = (window.start_at, window.end_at) if window else (None, None)
    used = budget_used(budget, workspace, start, end)
    percent = (used * 100 / limit).quantize(Decimal("0.1")) if limit else Decimal(0)
    blocked = budget.hard_stop and _blocked(budget, window)
    forecast = None
    if window is not None and window.start_at <= now < window.end_at:
        history = _baseline_window(window)
        forecast = budget_forecast(
            used=used,
            limit=limit,
            start=window.start_at,
            end=window.end_at,
            now=now,
            baseline=Baseline(
                budget_used(budget, workspace, history.start_at, history.end_at),
                (history.end_at - history.start_at).total_seconds(),
            ),
            hard_stop=budget.hard_stop,
            blocked=blocked,
            money=money,
        )
    return Burn(
        budget=budget,
        scope_label=label,
        used=used,
        limit=limit,
        percent=percent,
        period_label=window.label if window else "lifetime",
        resets_at=end,
        ladder=list(budget.ladder or []),
        money=money,
        blocked=blocked,
        closed=end is not None and end <= now,
        window=window,
        forecast_detail=forecast,
        increase=increase,
        increase_until=increase_until,
    )


def budget_burns(
    *,
    workspace: Workspace,
    now: dt.datetime | None = None,
    at: dt.datetime | None = None,
    budgets=None,
) -> list[Burn]:
    """Every budget of the workspace (or of `budgets`) in its period holding `at` (default:
    now, the live view; a past instant gives that period's close), fullest first."""
    now = now or timezone.now()
    at = min(at or now, now)
    qs = budgets if budgets is not None else Budget.objects.filter(workspace=workspace)
    burns = [_burn(budget, workspace, at=at, now=now) for budget in qs]
    burns.sort(key=lambda b: -b.percent)
    return burns


def period_anchor(period: Period, now: dt.datetime) -> dt.datetime:
    """The instant whose budget periods a page about `period` shows: now for the current
    period, the period's last moment for a past one."""
    return min(now, period.end_at - dt.timedelta(microseconds=1))
