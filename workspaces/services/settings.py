"""Workspace settings (name, time zone): owners and admins change them, each change audited."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from workspaces.models import Member, Workspace, validate_time_zone
from workspaces.services.audit import audit_record


@transaction.atomic
def workspace_update(
    *, workspace: Workspace, actor: Member, name: str, time_zone: str
) -> Workspace:
    """Rename the workspace or move it to another time zone (periods and charts follow: they
    are computed in the workspace's zone at read time)."""
    if not actor.can_manage or actor.workspace_id != workspace.pk:
        raise PermissionDenied("Only owners and admins change workspace settings.")
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A workspace needs a name."})
    validate_time_zone(time_zone)
    before = {"name": workspace.name, "time_zone": workspace.time_zone}
    after = {"name": name, "time_zone": time_zone}
    if before == after:
        return workspace
    workspace.name, workspace.time_zone = name, time_zone
    workspace.save(update_fields=["name", "time_zone"])
    audit_record(
        workspace=workspace,
        actor=actor,
        action="workspace.update",
        target=workspace,
        before=before,
        after=after,
    )
    return workspace
