"""Celery tasks for the rollups: a fan-out over workspaces, then one scoped task each."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from attribution.services.rollups import rollup_rebuild_range, rollup_workspace
from workspaces.models import Workspace
from workspaces.system import all_workspace_ids
from workspaces.tenancy import scoped_task


@shared_task(name="attribution.rollup_all")
def rollup_all() -> int:
    """Beat, every minute: enqueue an incremental rollup for every workspace."""
    ids = all_workspace_ids()
    for workspace_id in ids:
        rollup_workspace_task.delay(workspace_id=workspace_id)
    return len(ids)


@shared_task(name="attribution.rollup_workspace")
@scoped_task
def rollup_workspace_task(*, workspace_id: int) -> int:
    workspace = Workspace.objects.get(pk=workspace_id)
    return rollup_workspace(workspace=workspace).watermark


@shared_task(name="attribution.reconcile_all")
def reconcile_all(days: int = 2) -> int:
    """Beat, nightly: rebuild the last `days` days whole (safety net for anything missed)."""
    ids = all_workspace_ids()
    for workspace_id in ids:
        reconcile_workspace_task.delay(workspace_id=workspace_id, days=days)
    return len(ids)


@shared_task(name="attribution.reconcile_workspace")
@scoped_task
def reconcile_workspace_task(*, workspace_id: int, days: int = 2) -> int:
    workspace = Workspace.objects.get(pk=workspace_id)
    end = timezone.now() + dt.timedelta(hours=1)
    hours, _days = rollup_rebuild_range(
        workspace=workspace, start=end - dt.timedelta(days=days + 1), end=end
    )
    return hours
