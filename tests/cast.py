"""The standard cast: workspace A (owner, admin, finance, member), workspace B (an outsider)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.factories import PASSWORD, UserFactory
from workspaces.models import Member, Role, User, Workspace
from workspaces.services.workspaces import department_create, member_add, workspace_create
from workspaces.tenancy import workspace_scope

__all__ = ["PASSWORD", "Cast", "build_cast", "cast", "make_user", "scoped"]


def make_user(email: str) -> User:
    return UserFactory(email=email)


@dataclass
class Cast:
    workspace: Workspace
    other_workspace: Workspace
    owner: Member
    admin: Member
    finance: Member
    member: Member
    outsider: Member  # owner of workspace B

    def by_role(self, role: str) -> Member:
        return getattr(self, role)


def build_cast(prefix: str = "") -> Cast:
    owner_user = make_user(f"{prefix}owner@a.example")
    outsider_user = make_user(f"{prefix}outsider@b.example")
    ws_a = workspace_create(name="Acme", owner=owner_user)
    ws_b = workspace_create(name="Beta", owner=outsider_user)
    with workspace_scope(ws_a.pk):
        eng = department_create(workspace=ws_a, name="Engineering")
        owner = Member.objects.get(workspace=ws_a, user=owner_user)
        admin = member_add(
            workspace=ws_a, user=make_user(f"{prefix}admin@a.example"), role=Role.ADMIN
        )
        finance = member_add(
            workspace=ws_a, user=make_user(f"{prefix}finance@a.example"), role=Role.FINANCE
        )
        member = member_add(
            workspace=ws_a,
            user=make_user(f"{prefix}member@a.example"),
            role=Role.MEMBER,
            department=eng,
        )
    with workspace_scope(ws_b.pk):
        outsider = Member.objects.get(workspace=ws_b, user=outsider_user)
    return Cast(ws_a, ws_b, owner, admin, finance, member, outsider)


@pytest.fixture
def cast(db) -> Cast:
    return build_cast()


@pytest.fixture
def scoped(cast):
    """Run the test body inside workspace A's scope."""
    with workspace_scope(cast.workspace.pk):
        yield cast
