"""Writes for workspaces, members, departments and agents."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from workspaces import system
from workspaces.models import Agent, Department, Member, Role, User, Workspace
from workspaces.tenancy import workspace_scope


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "workspace"
    return base


@transaction.atomic
def workspace_create(
    *, name: str, owner: User, time_zone: str = "UTC", slug: str = ""
) -> Workspace:
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
    """Raises `ValidationError` ({"name": ...}) for a blank or taken name."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A department needs a name."}, code="required")
    if Department.objects.filter(workspace=workspace, name__iexact=name).exists():
        raise ValidationError({"name": "A department with this name exists."}, code="duplicate")
    try:
        with transaction.atomic():
            return Department.objects.create(workspace=workspace, name=name)
    except IntegrityError as exc:  # lost a race with a concurrent create
        raise ValidationError({"name": "A department with this name exists."}) from exc


def agent_create(
    *,
    workspace: Workspace,
    slug: str,
    name: str,
    owner: Member,
    department: Department | None = None,
    description: str = "",
) -> Agent:
    """Raises `ValidationError` (keyed by field) for a taken slug or a foreign owner/department."""
    slug = (slug or "").strip().lower()
    if owner.workspace_id != workspace.pk:
        raise ValidationError({"owner": "Unknown member."}, code="invalid_owner")
    if department is not None and department.workspace_id != workspace.pk:
        raise ValidationError({"department": "Unknown department."}, code="invalid_department")
    agent = Agent(
        workspace=workspace,
        slug=slug,
        name=(name or "").strip() or slug,
        owner=owner,
        department=department if department is not None else owner.department,
        description=description,
    )
    agent.full_clean(exclude=["workspace", "owner", "department"], validate_constraints=False)
    if Agent.objects.filter(workspace=workspace, slug=slug).exists():
        raise ValidationError({"slug": "An agent with this slug exists."}, code="duplicate")
    try:
        with transaction.atomic():
            agent.save(force_insert=True)
    except IntegrityError as exc:
        raise ValidationError({"slug": "An agent with this slug exists."}) from exc
    return agent
