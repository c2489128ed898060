"""Departments and agents."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from workspaces.access import get_in_workspace
from workspaces.decorators import (
    WorkspaceRequest,
    role_required,
    workspace_required,
)
from workspaces.forms import (
    AgentForm,
    DepartmentForm,
)
from workspaces.models import MANAGER_ROLES, Agent, Department
from workspaces.selectors import (
    agent_list,
    department_list,
    department_members,
)
from workspaces.services import directory
from workspaces.views.common import add_service_errors

# --- Departments ----------------------------------------------------------------------------


def _departments_page(request: WorkspaceRequest, *, form: DepartmentForm | None, status: int = 200):
    context = {"departments": department_list(workspace=request.workspace), "form": form}
    return render(request, "workspaces/departments.html", context, status=status)


@workspace_required
def departments(request: WorkspaceRequest) -> HttpResponse:
    return _departments_page(request, form=DepartmentForm() if request.member.can_manage else None)


@require_POST
@role_required(*MANAGER_ROLES)
def department_new(request: WorkspaceRequest) -> HttpResponse:
    form = DepartmentForm(request.POST)
    if form.is_valid():
        try:
            department = directory.department_add(
                workspace=request.workspace, name=form.cleaned_data["name"], actor=request.member
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Department “{department.name}” created.")
            return redirect("departments")
    return _departments_page(request, form=form, status=400)


@workspace_required
def department_detail(request: WorkspaceRequest, department_id: int) -> HttpResponse:
    workspace = request.workspace
    department = get_in_workspace(Department, workspace=workspace, pk=department_id)
    context = {
        "department": department,
        "members": department_members(workspace=workspace, department=department),
        "agents": agent_list(workspace=workspace, department=department),
    }
    return render(request, "workspaces/department_detail.html", context)


# --- Agents ---------------------------------------------------------------------------------


def _agents_page(request: WorkspaceRequest, *, form: AgentForm | None, status: int = 200):
    context = {"agents": agent_list(workspace=request.workspace), "form": form}
    return render(request, "workspaces/agents.html", context, status=status)


@workspace_required
def agents(request: WorkspaceRequest) -> HttpResponse:
    form = None
    if request.member.can_manage:
        form = AgentForm(workspace=request.workspace, initial={"owner": request.member})
    return _agents_page(request, form=form)


@require_POST
@role_required(*MANAGER_ROLES)
def agent_new(request: WorkspaceRequest) -> HttpResponse:
    form = AgentForm(request.POST, workspace=request.workspace)
    if form.is_valid():
        try:
            agent = directory.agent_add(
                workspace=request.workspace, actor=request.member, **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Agent “{agent.slug}” created.")
            return redirect("agent_detail", agent_id=agent.pk)
    return _agents_page(request, form=form, status=400)


@workspace_required
def agent_detail(request: WorkspaceRequest, agent_id: int) -> HttpResponse:
    agent = get_in_workspace(
        Agent.objects.select_related("owner__user", "department"),
        workspace=request.workspace,
        pk=agent_id,
    )
    return render(request, "workspaces/agent_detail.html", {"agent": agent})
