"""Pull the provider's figures for the last N days and store them, replacing what an earlier
pull stored for those days: providers finish a day's billing late, so the same day is re-read
on every daily run until it falls out of the window."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.egress import EgressPolicy, EgressRefused
from core.egress_http import egress_client
from reconciliation.models import AdminCredential, ProviderCostLine, ProviderDay
from reconciliation.providers import FETCHERS, AdminAPIError, Report
from reconciliation.selectors import policy_for
from reconciliation.services.alerts import reconciliation_alerts_check
from reconciliation.services.credentials import admin_credential_reveal
from workspaces.models import Workspace

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PullResult:
    provider: str
    since: dt.date
    until: dt.date
    days_reported: int
    lines: int
    error: str = ""


def _fetch(credential: AdminCredential, *, since: dt.date, until: dt.date) -> Report:
    policy = EgressPolicy.from_settings(settings)
    with egress_client(policy, timeout=TIMEOUT_S) as client:
        return FETCHERS[credential.provider](
            client,
            base_url=credential.base_url,
            secret=admin_credential_reveal(credential=credential),
            since=since,
            until=until,
        )


def _store(
    workspace: Workspace, provider: str, report: Report, *, since: dt.date, until: dt.date
) -> int:
    now = timezone.now()
    days = [since + dt.timedelta(days=i) for i in range((until - since).days + 1)]
    ProviderCostLine.objects.filter(
        workspace=workspace, provider=provider, day__gte=since, day__lte=until
    ).delete()
    ProviderCostLine.objects.bulk_create(
        ProviderCostLine(workspace=workspace, provider=provider, **vars(line))
        for line in report.lines
        if since <= line.day <= until
    )
    for day in days:
        ProviderDay.objects.update_or_create(
            workspace=workspace,
            provider=provider,
            day=day,
            defaults={"reported": day in report.days, "pulled_at": now},
        )
    return sum(1 for line in report.lines if since <= line.day <= until)


def provider_costs_pull(
    *, workspace: Workspace, provider: str, today: dt.date | None = None, days: int | None = None
) -> PullResult:
    """Re-pull `days` UTC days up to `today` (default: the policy's look-back, today in UTC)."""
    credential = AdminCredential.objects.get(workspace=workspace, provider=provider)
    today = today or timezone.now().astimezone(dt.UTC).date()
    span = days or policy_for(workspace=workspace).lookback_days
    since = today - dt.timedelta(days=span - 1)
    try:
        report = _fetch(credential, since=since, until=today)
    except (AdminAPIError, EgressRefused) as exc:
        credential.last_error = str(exc)[:300]
        credential.save(update_fields=["last_error"])
        return PullResult(provider, since, today, 0, 0, error=credential.last_error)
    with transaction.atomic():
        stored = _store(workspace, provider, report, since=since, until=today)
        credential.last_pulled_at = timezone.now()
        credential.last_error = ""
        credential.save(update_fields=["last_pulled_at", "last_error"])
        reconciliation_alerts_check(
            workspace=workspace, provider=provider, since=since, until=today
        )
    return PullResult(provider, since, today, len(report.days), stored)
