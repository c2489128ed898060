"""Writes for workspaces, members, departments and agents."""

from __future__ import annotations

from django.db import transaction
from django.utils.text import slugify

from workspaces import system
from workspaces.models import Agent, Department, Member, Role, User, Workspace
from workspaces.tenancy import workspace_scope


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "workspace"
    return base


@transaction.atomic
def workspace_create(*, name: str, owner: User, time_zone: str = "UTC", slug: str = "") -> Workspace:
    """Create a workspace with `owner` as its first member (role owner).

    The id is reserved first so the row can be inserted inside its own RLS scope.
    """
    workspace_id = system.next_workspace_id()
    slug = slug or f"{_unique_slug(name)}-{workspace_id}"
    with workspace_scope(workspace_id):
        workspace = Workspace(id=workspace_id, name=name.strip(), slug=slug, time_zone=time_zone)
        workspace.full_clean()
        workspace.save(force_insert=True)
        Member.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    return workspace


def member_add(
    *, workspace: Workspace, user: User, role: str, department: Department | None = None
) -> Member:
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}")
    member, _ = Member.objects.get_or_create(
        workspace=workspace, user=user, defaults={"role": role, "department": department}
    )
    return member


def department_create(*, workspace: Workspace, name: str) -> Department:
    return Department.objects.create(workspace=workspace, name=name.strip())


def agent_create(
    *,
    workspace: Workspace,
    slug: str,
    name: str,
    owner: Member,
    department: Department | None = None,
    description: str = "",
) -> Agent:
    return Agent.objects.create(
        workspace=workspace,
        slug=slug,
        name=name,
        owner=owner,
        department=department if department is not None else owner.department,
        description=description,
    )
