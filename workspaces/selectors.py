"""Reads for workspace pages. Every selector takes `workspace=` and filters by it explicitly
(RLS underneath would hide foreign rows anyway; the filter keeps intent visible)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet
from django.utils import timezone

from workspaces.models import Agent, Department, Invitation, Member, MemberLimits, Workspace


def member_list(*, workspace: Workspace) -> QuerySet[Member]:
    return (
        Member.objects.filter(workspace=workspace)
        .select_related("user", "department")
        .order_by("user__email")
    )


def member_limits_by_member(*, workspace: Workspace) -> dict[int, MemberLimits]:
    """Every member's limits row (members without one have no limits), by member id."""
    return {row.member_id: row for row in MemberLimits.objects.filter(workspace=workspace)}


def invitation_list_pending(*, workspace: Workspace) -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(
            workspace=workspace,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        )
        .select_related("department", "invited_by__user")
        .order_by("-created_at")
    )


def department_list(*, workspace: Workspace) -> QuerySet[Department]:
    return (
        Department.objects.filter(workspace=workspace)
        .annotate(
            member_count=Count("members", distinct=True), agent_count=Count("agents", distinct=True)
        )
        .order_by("name")
    )


def department_members(*, workspace: Workspace, department: Department) -> QuerySet[Member]:
    return member_list(workspace=workspace).filter(department=department)


def agent_list(*, workspace: Workspace, department: Department | None = None) -> QuerySet[Agent]:
    qs = Agent.objects.filter(workspace=workspace).select_related("owner__user", "department")
    if department is not None:
        qs = qs.filter(department=department)
    return qs.order_by("slug")


@dataclass(frozen=True)
class WorkspaceSummary:
    members: int
    departments: int
    agents: int
    pending_invitations: int


def workspace_summary(*, workspace: Workspace) -> WorkspaceSummary:
    return WorkspaceSummary(
        members=Member.objects.filter(workspace=workspace).count(),
        departments=Department.objects.filter(workspace=workspace).count(),
        agents=Agent.objects.filter(workspace=workspace).count(),
        pending_invitations=invitation_list_pending(workspace=workspace).count(),
    )
