"""Alerts when the bill and the ledger disagree, through billing's alert machinery (recorded
once per dedupe key, delivered to every enabled channel on commit)."""

from __future__ import annotations

import datetime as dt

from billing.models.alerts import AlertKind
from billing.services.alerts import alert_record
from core.money import format_usd, usd_exact
from reconciliation import selectors
from workspaces.models import Workspace

ALERT_KIND = AlertKind.RECONCILIATION


def reconciliation_alerts_check(
    *, workspace: Workspace, provider: str, since: dt.date, until: dt.date
) -> list:
    """One alert per provider and day whose capture rate is under the workspace threshold, and
    one per day whose difference exceeds the drift limit (either way). Days the provider has
    not answered for yet are skipped: they are late, not uncaptured."""
    policy = selectors.policy_for(workspace=workspace)
    rows = selectors.comparison(workspace=workspace, since=since, until=until, provider=provider)
    raised = []
    for day in selectors.per_day(rows):
        if not day.reported:
            continue
        rate = day.capture_rate
        data = {
            "provider": provider,
            "day": day.day.isoformat(),
            "provider_cost_usd": usd_exact(day.theirs.cost),
            "ledger_cost_usd": usd_exact(day.ours.cost),
            "difference_usd": usd_exact(day.difference),
            "capture_rate_pct": None if rate is None else f"{rate:.2f}",
            "threshold_pct": f"{policy.capture_threshold_pct:.2f}",
        }
        if rate is not None and rate < policy.capture_threshold_pct:
            alert = alert_record(
                workspace_id=workspace.pk,
                kind=ALERT_KIND,
                dedupe_key=f"recon:capture:{provider}:{day.day.isoformat()}",
                title=f"{provider} {day.day}: Alephant captured {rate:.1f}% of the provider's "
                f"cost (threshold {policy.capture_threshold_pct:.0f}%)",
                message=f"The provider billed {format_usd(day.theirs.cost)}, the ledger has "
                f"{format_usd(day.ours.cost)}: {format_usd(day.difference)} was spent with this "
                "provider account outside Alephant.",
                period_key=day.day.isoformat(),
                data=data,
            )
            raised.append(alert)
        if abs(day.difference) > policy.drift_limit_usd:
            alert = alert_record(
                workspace_id=workspace.pk,
                kind=ALERT_KIND,
                dedupe_key=f"recon:drift:{provider}:{day.day.isoformat()}",
                title=f"{provider} {day.day}: bill and ledger differ by "
                f"{format_usd(day.difference)}",
                message=f"Drift limit {format_usd(policy.drift_limit_usd)}.",
                period_key=day.day.isoformat(),
                data=data,
            )
            raised.append(alert)
    return [a for a in raised if a is not None]
