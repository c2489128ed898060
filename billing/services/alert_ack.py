"""Acknowledging alerts: a person saw them; the rows stay as history."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from billing.models import Alert
from workspaces.models import Member, Workspace
from workspaces.services.audit import audit_record


def alert_acknowledge(
    *, workspace: Workspace, actor: Member, alert: Alert, group: Q | None = None
) -> int:
    """Acknowledge `alert` (and the open alerts of its `group`). Returns how many."""
    qs = Alert.objects.filter(workspace=workspace, acknowledged_at__isnull=True)
    qs = qs.filter(group) if group is not None else qs.filter(pk=alert.pk)
    count = qs.update(acknowledged_at=timezone.now(), acknowledged_by=actor)
    audit_record(
        workspace=workspace,
        actor=actor,
        action="alert.acknowledge",
        target=alert,
        target_label=alert.title[:200],
    )
    return count
