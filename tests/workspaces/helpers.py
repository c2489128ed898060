"""Small helpers shared by the workspace tests."""

from __future__ import annotations

import re

from workspaces.models import Invitation, Member
from workspaces.tenancy import workspace_scope

INVITE_LINK = re.compile(r"https?://[^\s]+/invite/([A-Za-z0-9_\-]+)/")


def token_from_mail(message) -> str:
    match = INVITE_LINK.search(message.body)
    assert match, message.body
    return match.group(1)


def members_of(workspace) -> dict[str, Member]:
    with workspace_scope(workspace.pk):
        return {
            m.user.email: m
            for m in Member.objects.filter(workspace=workspace).select_related("user", "department")
        }


def invitations_of(workspace) -> list[Invitation]:
    with workspace_scope(workspace.pk):
        return list(Invitation.objects.filter(workspace=workspace))
