"""Admin writes on the workspace directory (members, departments, agents), each audited.

Gateway key snapshots denormalise a member's department and agents, so every change here
sends a `workspaces.hooks` event; the gateway republishes the affected keys on commit.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from workspaces import hooks
from workspaces.models import Agent, Department, Member, Role, Workspace
from workspaces.services.audit import audit_record
from workspaces.services.invitations import invitation_create, invitation_revoke
from workspaces.services.throttle import action_throttle
from workspaces.services.workspaces import agent_create, department_create

_UNSET: Any = object()


def _republish_member(member: Member) -> None:
    hooks.member_changed(workspace_id=member.workspace_id, member_id=member.pk)


def _member_summary(member: Member) -> dict:
    return {"email": member.user.email, "role": member.role, "department_id": member.department_id}


def _require_manager(actor: Member) -> None:
    if not actor.can_manage:
        raise PermissionDenied("Only owners and admins can do this.")


def _lock_owners(*, member: Member, actor: Member) -> set[int]:
    """Lock the workspace's owner rows, always in id order, and re-read who holds what.

    Two owners demoting or removing each other at once would otherwise each count two owners
    and leave none, or lock each other's rows in opposite orders and deadlock. With one lock
    order the second change waits for the first, then sees its result: the actor or the target
    may no longer be an owner (or a member) by then. Returns the ids of the current owners.
    """
    owners = {
        m.pk
        for m in Member.objects.select_for_update()
        .filter(workspace_id=member.workspace_id, role=Role.OWNER)
        .order_by("pk")
        .only("pk")
    }
    fresh = Member.objects.filter(pk__in=[member.pk, actor.pk]).values_list("pk", "role")
    roles = dict(fresh)
    if actor.pk not in roles or member.pk not in roles:
        raise ValidationError({"non_field_errors": ["This member changed meanwhile; reload."]})
    actor.role, member.role = roles[actor.pk], roles[member.pk]
    return owners


@transaction.atomic
def member_update(
    *, member: Member, actor: Member, role: str = _UNSET, department: Department | None = _UNSET
) -> Member:
    """Change a member's role and/or department. Only an owner grants or takes the owner role;
    the last owner cannot be demoted."""
    _require_manager(actor)
    owners = _lock_owners(member=member, actor=actor) if role is not _UNSET else set()
    _require_manager(actor)
    before = _member_summary(member)
    if role is not _UNSET and role != member.role:
        if role not in Role.values:
            raise ValidationError({"role": f"Unknown role {role!r}."})
        if Role.OWNER in (role, member.role) and actor.role != Role.OWNER:
            raise PermissionDenied("Only an owner can grant or remove the owner role.")
        if member.role == Role.OWNER and len(owners) <= 1:
            raise ValidationError({"role": "A workspace needs at least one owner."})
        member.role = role
    if department is not _UNSET:
        if department is not None and department.workspace_id != member.workspace_id:
            raise ValidationError({"department_id": "Not found."})
        member.department = department
    member.save(update_fields=["role", "department"])
    audit_record(
        workspace=member.workspace,
        actor=actor,
        action="member.update",
        target=member,
        target_label=member.user.email,
        before=before,
        after=_member_summary(member),
    )
    _republish_member(member)
    return member


@transaction.atomic
def member_remove(*, member: Member, actor: Member) -> None:
    """Remove a member: their gateway keys and API tokens go with them (keys revoked at the
    gateway on commit). Their agents must be reassigned or deleted first."""
    _require_manager(actor)
    owners = _lock_owners(member=member, actor=actor)
    _require_manager(actor)
    if member.role == Role.OWNER:
        if actor.role != Role.OWNER:
            raise PermissionDenied("Only an owner can remove an owner.")
        if len(owners) <= 1:
            raise ValidationError({"non_field_errors": ["A workspace needs at least one owner."]})
    if Agent.objects.filter(workspace_id=member.workspace_id, owner=member).exists():
        raise ValidationError(
            {"non_field_errors": ["This member owns agents: reassign or delete them first."]}
        )
    hooks.send(hooks.MEMBER_REMOVING, member=member)
    audit_record(
        workspace=member.workspace,
        actor=actor,
        action="member.remove",
        target=member,
        target_label=member.user.email,
        before=_member_summary(member),
    )
    member.delete()


@transaction.atomic
def department_add(*, workspace: Workspace, name: str, actor: Member) -> Department:
    _require_manager(actor)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "This field may not be blank."})
    if Department.objects.filter(workspace=workspace, name=name).exists():
        raise ValidationError({"name": "A department with this name already exists."})
    try:
        with transaction.atomic():
            department = department_create(workspace=workspace, name=name)
    except IntegrityError as exc:
        raise ValidationError({"name": "A department with this name already exists."}) from exc
    audit_record(
        workspace=workspace,
        actor=actor,
        action="department.create",
        target=department,
        after={"name": department.name},
    )
    return department


@transaction.atomic
def department_rename(*, department: Department, name: str, actor: Member) -> Department:
    _require_manager(actor)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "This field may not be blank."})
    clash = Department.objects.filter(workspace_id=department.workspace_id, name=name)
    if clash.exclude(pk=department.pk).exists():
        raise ValidationError({"name": "A department with this name already exists."})
    before = {"name": department.name}
    department.name = name
    department.save(update_fields=["name"])
    audit_record(
        workspace=department.workspace,
        actor=actor,
        action="department.update",
        target=department,
        before=before,
        after={"name": name},
    )
    return department


@transaction.atomic
def department_delete(*, department: Department, actor: Member) -> None:
    """Members and agents of the department keep existing, with no department."""
    _require_manager(actor)
    members = list(Member.objects.filter(department=department))
    owners = set(Agent.objects.filter(department=department).values_list("owner_id", flat=True))
    audit_record(
        workspace=department.workspace,
        actor=actor,
        action="department.delete",
        target=department,
        before={"name": department.name},
    )
    department.delete()
    for member_id in {m.pk for m in members} | owners:
        hooks.member_changed(workspace_id=department.workspace_id, member_id=member_id)


def _agent_summary(agent: Agent) -> dict:
    return {
        "slug": agent.slug,
        "name": agent.name,
        "owner_id": agent.owner_id,
        "department_id": agent.department_id,
        "description": agent.description[:200],
    }


def _check_agent_owner(actor: Member, owner: Member) -> None:
    if not actor.can_manage and owner.pk != actor.pk:
        raise PermissionDenied("You can only manage your own agents.")


@transaction.atomic
def agent_add(
    *,
    workspace: Workspace,
    actor: Member,
    slug: str,
    name: str,
    owner: Member | None = None,
    department: Department | None = None,
    description: str = "",
) -> Agent:
    owner = owner or actor
    _check_agent_owner(actor, owner)
    for value, field in ((owner, "owner_id"), (department, "department_id")):
        if value is not None and value.workspace_id != workspace.pk:
            raise ValidationError({field: "Not found."})
    if Agent.objects.filter(workspace=workspace, slug=slug).exists():
        raise ValidationError({"slug": "An agent with this slug already exists."})
    try:
        with transaction.atomic():
            agent = agent_create(
                workspace=workspace,
                slug=slug,
                name=name.strip(),
                owner=owner,
                department=department,
                description=description,
            )
    except IntegrityError as exc:
        raise ValidationError({"slug": "An agent with this slug already exists."}) from exc
    audit_record(
        workspace=workspace,
        actor=actor,
        action="agent.create",
        target=agent,
        after=_agent_summary(agent),
    )
    _republish_member(owner)
    return agent


@transaction.atomic
def agent_update(
    *,
    agent: Agent,
    actor: Member,
    name: str = _UNSET,
    owner: Member = _UNSET,
    department: Department | None = _UNSET,
    description: str = _UNSET,
) -> Agent:
    _check_agent_owner(actor, agent.owner)
    before = _agent_summary(agent)
    previous_owner = agent.owner
    if owner is not _UNSET:
        if owner.workspace_id != agent.workspace_id:
            raise ValidationError({"owner_id": "Not found."})
        _check_agent_owner(actor, owner)
        agent.owner = owner
    if department is not _UNSET:
        if department is not None and department.workspace_id != agent.workspace_id:
            raise ValidationError({"department_id": "Not found."})
        agent.department = department
    if name is not _UNSET:
        if not name.strip():
            raise ValidationError({"name": "This field may not be blank."})
        agent.name = name.strip()
    if description is not _UNSET:
        agent.description = description
    agent.save()
    audit_record(
        workspace=agent.workspace,
        actor=actor,
        action="agent.update",
        target=agent,
        before=before,
        after=_agent_summary(agent),
    )
    _republish_member(previous_owner)
    if agent.owner_id != previous_owner.pk:
        _republish_member(agent.owner)
    return agent


@transaction.atomic
def agent_delete(*, agent: Agent, actor: Member) -> None:
    """Deletes the agent and its gateway keys (revoked at the gateway on commit)."""
    _check_agent_owner(actor, agent.owner)
    hooks.send(hooks.AGENT_DELETING, agent=agent)
    audit_record(
        workspace=agent.workspace,
        actor=actor,
        action="agent.delete",
        target=agent,
        before=_agent_summary(agent),
    )
    owner = agent.owner
    agent.delete()
    _republish_member(owner)


@transaction.atomic
def invitation_send(
    *,
    workspace: Workspace,
    actor: Member,
    email: str,
    role: str,
    department: Department | None = None,
):
    """`invitations.invitation_create` (which emails the link on commit) plus the audit entry.

    Throttled per workspace and per user: each invitation mails an address the caller picks."""
    _require_manager(actor)
    action_throttle(action="invitation", workspace_id=workspace.pk, user_id=actor.user_id)
    issued = invitation_create(
        workspace=workspace, invited_by=actor, email=email, role=role, department=department
    )
    invitation = issued.invitation
    audit_record(
        workspace=workspace,
        actor=actor,
        action="invitation.create",
        target=invitation,
        target_label=invitation.email,
        after={
            "email": invitation.email,
            "role": invitation.role,
            "department_id": invitation.department_id,
        },
    )
    return issued


@transaction.atomic
def invitation_withdraw(*, invitation, actor: Member):
    _require_manager(actor)
    before = invitation.status
    invitation = invitation_revoke(invitation=invitation)
    if before != invitation.status:
        audit_record(
            workspace=invitation.workspace,
            actor=actor,
            action="invitation.revoke",
            target=invitation,
            target_label=invitation.email,
            before={"status": before},
            after={"status": invitation.status},
        )
    return invitation
