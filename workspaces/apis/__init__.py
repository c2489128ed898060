"""REST API for the workspace directory: members, invitations, departments, agents, audit log
and personal API tokens, one module per group. Every view is a `WorkspaceViewSet` (scope, roles,
404s, error shape); writes go through services, which also append the audit entries."""

from workspaces.apis.members import InvitationViewSet, MemberViewSet
from workspaces.apis.organization import AgentViewSet, DepartmentViewSet
from workspaces.apis.settings import WorkspaceSettingsViewSet
from workspaces.apis.tokens import APITokenViewSet, AuditLogViewSet

__all__ = [
    "APITokenViewSet",
    "AgentViewSet",
    "AuditLogViewSet",
    "DepartmentViewSet",
    "InvitationViewSet",
    "MemberViewSet",
    "WorkspaceSettingsViewSet",
]
