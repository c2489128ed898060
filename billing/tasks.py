"""Celery tasks for alerts: thin wrappers that fetch and call a service."""

from __future__ import annotations

import os
import socket

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from billing.services.alerts import (
    DELIVER_TASK,
    alert_deliver,
    alerts_drain,
)
from billing.services.budget_requests import budget_request_expire
from billing.services.channels import DeliveryError
from billing.services.counters import counters_reconcile
from billing.services.forecast import budget_forecast_check
from billing.services.ledger_retention import ledger_partitions_keep_up, ledger_retention_run
from billing.services.spend_reports import spend_reports_send_due
from gateway.snapshots import redis_client
from workspaces.models import Workspace
from workspaces.system import all_workspace_ids
from workspaces.tenancy import scoped_task

MAX_DELIVERY_ATTEMPTS = 6


@shared_task(name="billing.alerts_drain")
def alerts_drain_task() -> int:
    """Beat, every few seconds: record the gateway's alert events and fan out deliveries."""
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    return alerts_drain(client=redis_client(), consumer=consumer)


@shared_task(name=DELIVER_TASK, bind=True, max_retries=MAX_DELIVERY_ATTEMPTS - 1)
def alert_deliver_task(self, *, workspace_id: int, alert_id: int, channel_id: int) -> None:
    attempt = self.request.retries + 1
    error = _deliver_scoped(
        workspace_id=workspace_id, alert_id=alert_id, channel_id=channel_id, attempt=attempt
    )
    if error is not None:
        # Exponential backoff: 2, 4, 8, 16, 32 s (ALEPHANT_ALERT_RETRY_BASE_S scales it).
        base = getattr(settings, "ALEPHANT_ALERT_RETRY_BASE_S", 2)
        raise self.retry(exc=error, countdown=base * 2 ** (attempt - 1))


@scoped_task
def _deliver_scoped(
    *, workspace_id: int, alert_id: int, channel_id: int, attempt: int
) -> DeliveryError | None:
    return alert_deliver(
        workspace_id=workspace_id, alert_id=alert_id, channel_id=channel_id, attempt=attempt
    )


@shared_task(name="billing.budgets_forecast_all")
def budgets_forecast_all() -> int:
    """Beat, hourly: check every workspace's burn rate."""
    ids = all_workspace_ids()
    for workspace_id in ids:
        budgets_forecast_task.delay(workspace_id=workspace_id)
    return len(ids)


@shared_task(name="billing.budgets_forecast")
@scoped_task
def budgets_forecast_task(*, workspace_id: int) -> int:
    workspace = Workspace.objects.get(pk=workspace_id)
    return len(budget_forecast_check(workspace=workspace))


@shared_task(name="billing.counters_reconcile_all")
def counters_reconcile_all() -> int:
    """Beat, every 10 minutes: raise budget counters that fell behind the ledger."""
    ids = all_workspace_ids()
    for workspace_id in ids:
        counters_reconcile_task.delay(workspace_id=workspace_id)
    return len(ids)


@shared_task(name="billing.counters_reconcile")
@scoped_task
def counters_reconcile_task(*, workspace_id: int) -> int:
    workspace = Workspace.objects.get(pk=workspace_id)
    return len(counters_reconcile(workspace=workspace, client=redis_client()))


def register() -> None:
    """Called from `BillingConfig.ready()`: importing this module registered the tasks."""


@shared_task(name="billing.budget_requests_expire_all")
def budget_requests_expire_all() -> int:
    """Beat, every minute: pending requests past their end expire; lapsed increases republish
    (the gateway already stopped counting them at their end)."""
    ids = all_workspace_ids()
    for workspace_id in ids:
        budget_requests_expire_task.delay(workspace_id=workspace_id)
    return len(ids)


@shared_task(name="billing.budget_requests_expire")
@scoped_task
def budget_requests_expire_task(*, workspace_id: int) -> int:
    return budget_request_expire(workspace_id=workspace_id)


@shared_task(name="billing.spend_reports_all")
def spend_reports_all() -> int:
    """Beat, hourly: each department's weekly and monthly spend report, once its period has
    closed in the workspace's own time zone (a row per department and period: sent once)."""
    ids = all_workspace_ids()
    for workspace_id in ids:
        spend_reports_task.delay(workspace_id=workspace_id)
    return len(ids)


@shared_task(name="billing.spend_reports")
@scoped_task
def spend_reports_task(*, workspace_id: int) -> int:
    workspace = Workspace.objects.get(pk=workspace_id)
    return sum(
        spend_reports_send_due(workspace=workspace, cadence=cadence)
        for cadence in ("week", "month")
    )


@shared_task(name="billing.ledger_partitions_maintain")
def ledger_partitions_maintain() -> dict[str, list[str]]:
    """Beat, hourly (idempotent): create the coming months' ledger partitions, then archive and
    drop the months past `ALEPHANT_LEDGER_RETENTION_MONTHS` (none when unset)."""
    now = timezone.now()
    created = ledger_partitions_keep_up(now=now)
    retention = ledger_retention_run(now=now)
    return {
        "created": created,
        "archived": [str(a.path) for a in retention.archived],
        "refused": [f"{r.partition}: {r.reason}" for r in retention.refused],
    }
