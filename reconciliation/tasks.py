"""Celery: the daily re-pull of every workspace's provider figures, and the monthly FOCUS file.
Thin: ids in, the service does the work inside the workspace's scope."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from reconciliation.models import AdminCredential
from reconciliation.services.focus_files import focus_file_write
from reconciliation.services.pull import provider_costs_pull
from workspaces.models import Workspace
from workspaces.system import all_workspace_ids
from workspaces.tenancy import scoped_task


@shared_task(name="reconciliation.pull_all")
def reconciliation_pull_all() -> int:
    """Beat, daily: one task per workspace (which knows its own admin keys under RLS)."""
    ids = all_workspace_ids()
    for workspace_id in ids:
        reconciliation_pull_workspace_task.delay(workspace_id=workspace_id)
    return len(ids)


@shared_task(name="reconciliation.pull_workspace")
@scoped_task
def reconciliation_pull_workspace_task(*, workspace_id: int) -> list[str]:
    providers = list(
        AdminCredential.objects.filter(workspace_id=workspace_id).values_list("provider", flat=True)
    )
    for provider in providers:
        reconciliation_pull_task.delay(workspace_id=workspace_id, provider=provider)
    return providers


@shared_task(name="reconciliation.pull")
@scoped_task
def reconciliation_pull_task(*, workspace_id: int, provider: str) -> dict:
    workspace = Workspace.objects.get(pk=workspace_id)
    result = provider_costs_pull(workspace=workspace, provider=provider)
    return {"provider": result.provider, "lines": result.lines, "error": result.error}


@shared_task(name="reconciliation.focus_files_all")
def focus_files_all() -> int:
    """Beat, monthly (the 1st): last month's FOCUS file per workspace, if a directory is set."""
    if not settings.ALEPHANT_FOCUS_EXPORT_DIR:
        return 0
    ids = all_workspace_ids()
    for workspace_id in ids:
        focus_file_task.delay(workspace_id=workspace_id)
    return len(ids)


@shared_task(name="reconciliation.focus_file")
@scoped_task
def focus_file_task(*, workspace_id: int) -> str:
    last_month = timezone.now().astimezone(dt.UTC).date().replace(day=1) - dt.timedelta(days=1)
    workspace = Workspace.objects.get(pk=workspace_id)
    return str(focus_file_write(workspace=workspace, month_day=last_month))
