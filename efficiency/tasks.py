"""Celery tasks: thin, idempotent, scoped. The fan-outs walk every workspace through the one
narrow cross-tenant path (`workspaces.system.all_workspace_ids`) and run each workspace in its
own scope, so one workspace's failure never stops the others."""

from __future__ import annotations

import logging

from celery import shared_task

from efficiency import services
from efficiency.models import Period
from workspaces import system
from workspaces.models import Workspace
from workspaces.tenancy import scoped_task, workspace_scope

log = logging.getLogger(__name__)


@shared_task
@scoped_task
def efficiency_compute(*, workspace_id: int, period: str = Period.WEEK) -> int:
    workspace = Workspace.objects.get(pk=workspace_id)
    return services.efficiency_compute(workspace=workspace, period=period).pk


@shared_task
def efficiency_recompute_all() -> int:
    done = 0
    for workspace_id in system.all_workspace_ids():
        try:
            with workspace_scope(workspace_id):
                workspace = Workspace.objects.get(pk=workspace_id)
                for period in (Period.WEEK, Period.MONTH):
                    services.efficiency_compute(workspace=workspace, period=period)
            done += 1
        except Exception:
            log.exception("efficiency recompute failed for workspace %s", workspace_id)
    return done


@shared_task
def efficiency_weekly_digest() -> int:
    """Monday morning: last week's grades to each workspace's finance members."""
    sent = 0
    for workspace_id in system.all_workspace_ids():
        try:
            with workspace_scope(workspace_id):
                workspace = Workspace.objects.get(pk=workspace_id)
                sent += services.efficiency_digest_send(workspace=workspace) > 0
        except Exception:
            log.exception("efficiency digest failed for workspace %s", workspace_id)
    return sent
