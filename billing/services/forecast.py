"""Forecast alerts: a spend budget whose burn rate so far exhausts it before its period ends."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from billing.models import Alert, Budget
from billing.models.alerts import AlertKind
from billing.services.alerts import alert_record, scope_label
from billing.services.counters import ledger_total
from core.money import format_usd, usd_exact
from core.periods import period_bounds
from workspaces.models import Workspace


def budget_forecast_check(*, workspace: Workspace, now: datetime | None = None) -> list[Alert]:
    """Alert (once per budget and period) when the burn rate so far exhausts a spend budget
    before its period ends. Linear projection; ignored in the first 10% of a period."""
    now = now or timezone.now()
    created = []
    for budget in Budget.objects.filter(workspace=workspace, metric="usd").exclude(
        period="lifetime"
    ):
        key, start, end = period_bounds(budget.period, workspace.time_zone, now.timestamp())
        assert start is not None and end is not None
        total_s = (end - start).total_seconds()
        elapsed_s = (now - start).total_seconds()
        if elapsed_s < 0.1 * total_s:
            continue
        spent = ledger_total(
            workspace_id=workspace.pk,
            metric="usd",
            scope_type=budget.scope_type,
            scope_id=budget.scope_id,
            scope_key=budget.scope_key,
            model=budget.model_filter or None,
            start=start,
            end=end,
        )
        limit = budget.limit_units
        if spent <= 0 or limit <= 0 or spent >= limit:
            continue
        projected = spent * total_s / elapsed_s
        if projected <= limit:
            continue
        exhaust_at = start.timestamp() + limit / spent * elapsed_s
        exhaust = datetime.fromtimestamp(exhaust_at, start.tzinfo)
        alert = alert_record(
            workspace_id=workspace.pk,
            kind=AlertKind.FORECAST,
            dedupe_key=f"forecast:{budget.pk}:{key}",
            title=f"Budget {budget.pk} on {scope_label(budget)} is on track to run out",
            message=(
                f"{format_usd(spent)} of {format_usd(limit)} spent; at this rate the budget "
                f"runs out around {exhaust:%Y-%m-%d %H:%M %Z}, "
                f"before the period ends ({end:%Y-%m-%d})."
            ),
            budget=budget,
            period_key=key,
            data={
                "spent": usd_exact(spent),
                "limit": usd_exact(limit),
                "projected": usd_exact(int(projected)),
                "exhausts_at": exhaust.isoformat(),
            },
        )
        if alert is not None:
            created.append(alert)
    return created
