"""Drill-downs of one member, agent, department, key, model, provider, property or session."""

from __future__ import annotations

from django.http import Http404, HttpResponse

from alephant.replica import replica_reads_view
from attribution.views.spend import drilldown
from gateway.models import GatewayKey
from workspaces.access import get_in_workspace
from workspaces.decorators import (
    WorkspaceRequest,
    require_self_or_reader,
    role_required,
    workspace_required,
)
from workspaces.models import SPEND_READER_ROLES, Agent, Department, Member


@workspace_required
@replica_reads_view
def member_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    member = get_in_workspace(
        Member.objects.select_related("user", "department"), workspace=request.workspace, pk=pk
    )
    require_self_or_reader(request, member_id=member.pk)
    keys = GatewayKey.objects.filter(workspace=request.workspace, member=member)
    return drilldown(
        request,
        dimension="member",
        key=str(member.pk),
        title=member.user.name or member.user.email,
        subtitle=f"{member.get_role_display()} · {member.department or 'no department'}",
        extra={"member_keys": keys},
        entity=member,
    )


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def agent_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    agent = get_in_workspace(
        Agent.objects.select_related("owner__user"), workspace=request.workspace, pk=pk
    )
    return drilldown(
        request,
        dimension="agent",
        key=str(agent.pk),
        title=f"Agent {agent.slug}",
        subtitle=f"owned by {agent.owner.user.email}",
        entity=agent,
    )


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def department_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    department = get_in_workspace(Department, workspace=request.workspace, pk=pk)
    return drilldown(
        request,
        dimension="department",
        key=str(department.pk),
        title=f"Department {department.name}",
        entity=department,
    )


@workspace_required
@replica_reads_view
def key_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    key = get_in_workspace(
        GatewayKey.objects.select_related("member", "agent__owner"),
        workspace=request.workspace,
        pk=pk,
    )
    require_self_or_reader(request, member_id=key.member_id)
    return drilldown(
        request,
        dimension="gateway_key",
        key=str(key.pk),
        title=f"Key {key.name}",
        subtitle=f"{key.prefix}… · {key.status}",
        entity=key,
    )


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def model_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    if "/" not in key:
        raise Http404("Models are provider/model.")
    return drilldown(request, dimension="model", key=key, title=f"Model {key}", by="member")


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def provider_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    return drilldown(request, dimension="provider", key=key, title=f"Provider {key}")


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def property_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    if "=" not in key:
        raise Http404("Properties are name=value.")
    return drilldown(request, dimension="property", key=key, title=f"Property {key}")
