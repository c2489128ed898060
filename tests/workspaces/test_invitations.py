"""Invitation services: create, accept, expire, reuse, wrong email, revoke."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.cast import make_user
from tests.workspaces.helpers import invitations_of, members_of, token_from_mail
from workspaces import system
from workspaces.models import Invitation, Role
from workspaces.services.invitations import (
    InvitationError,
    invitation_accept,
    invitation_create,
    invitation_revoke,
)
from workspaces.tenancy import workspace_scope


def _invite(cast, email="new@c.example", role=Role.MEMBER, department=None, by=None):
    with workspace_scope(cast.workspace.pk):
        return invitation_create(
            workspace=cast.workspace,
            invited_by=by or cast.owner,
            email=email,
            role=role,
            department=department,
        )


def test_accept_creates_the_member_with_role_and_department(cast):
    eng = cast.member.department
    issued = _invite(cast, email="New@C.example", role=Role.FINANCE, department=eng)
    user = make_user("new@c.example")  # case differs from the invited spelling

    member = invitation_accept(token=issued.token, user=user)

    assert member.workspace_id == cast.workspace.pk
    assert member.role == Role.FINANCE
    assert member.department_id == eng.pk
    [invitation] = invitations_of(cast.workspace)
    assert invitation.accepted_by_id == user.pk and invitation.accepted_at is not None
    assert [m.workspace_id for m in system.user_memberships(user.pk)] == [cast.workspace.pk]


def test_only_the_sha256_of_the_token_is_stored(cast):
    issued = _invite(cast)
    [invitation] = invitations_of(cast.workspace)
    assert invitation.token_hash == hashlib.sha256(issued.token.encode()).hexdigest()
    stored = [str(getattr(invitation, f.attname)) for f in Invitation._meta.concrete_fields]
    assert not any(issued.token in value for value in stored)
    assert len(issued.token) >= 43  # token_urlsafe(32)


def test_the_link_is_emailed_after_commit(cast, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        issued = _invite(cast, email="mailme@c.example")
    [message] = mailoutbox
    assert message.to == ["mailme@c.example"]
    assert "Acme" in message.subject
    assert token_from_mail(message) == issued.token
    assert f"/invite/{issued.token}/" in issued.url


def test_expired_link_is_refused(cast):
    issued = _invite(cast)
    with workspace_scope(cast.workspace.pk):
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvitationError) as exc:
        invitation_accept(token=issued.token, user=make_user("new@c.example"))
    assert exc.value.reason == InvitationError.EXPIRED
    assert "new@c.example" not in members_of(cast.workspace)


def test_link_works_once(cast):
    issued = _invite(cast)
    user = make_user("new@c.example")
    invitation_accept(token=issued.token, user=user)
    with pytest.raises(InvitationError) as exc:
        invitation_accept(token=issued.token, user=user)
    assert exc.value.reason == InvitationError.USED


def test_wrong_email_is_refused(cast):
    issued = _invite(cast)
    with pytest.raises(InvitationError) as exc:
        invitation_accept(token=issued.token, user=cast.outsider.user)
    assert exc.value.reason == InvitationError.WRONG_EMAIL
    assert cast.outsider.user.email not in members_of(cast.workspace)
    [invitation] = invitations_of(cast.workspace)
    assert invitation.accepted_at is None


def test_unknown_and_revoked_tokens_are_refused(cast):
    with pytest.raises(InvitationError) as exc:
        invitation_accept(token="not-a-token", user=cast.outsider.user)
    assert exc.value.reason == InvitationError.INVALID

    issued = _invite(cast)
    [invitation] = invitations_of(cast.workspace)
    with workspace_scope(cast.workspace.pk):
        invitation_revoke(invitation=invitation)
    with pytest.raises(InvitationError) as exc:
        invitation_accept(token=issued.token, user=make_user("new@c.example"))
    assert exc.value.reason == InvitationError.REVOKED


def test_existing_user_gets_a_second_workspace(cast):
    issued = _invite(cast, email=cast.outsider.user.email, role=Role.ADMIN)
    member = invitation_accept(token=issued.token, user=cast.outsider.user)
    assert member.role == Role.ADMIN
    workspaces = {m.workspace_id for m in system.user_memberships(cast.outsider.user.pk)}
    assert workspaces == {cast.workspace.pk, cast.other_workspace.pk}


@pytest.mark.parametrize(
    ("email", "role", "field"),
    [
        ("not-an-email", Role.MEMBER, "email"),
        ("a@b", Role.MEMBER, "email"),
        ("new@c.example", "superuser", "role"),
        ("member@a.example", Role.MEMBER, "email"),  # already a member
    ],
)
def test_bad_input_is_a_validation_error(cast, email, role, field):
    with pytest.raises(ValidationError) as exc:
        _invite(cast, email=email, role=role)
    assert field in exc.value.message_dict
    assert invitations_of(cast.workspace) == []


def test_one_pending_invitation_per_email(cast):
    _invite(cast, email="dup@c.example")
    with pytest.raises(ValidationError) as exc:
        _invite(cast, email="DUP@c.example")
    assert "pending" in exc.value.message_dict["email"][0]
    assert len(invitations_of(cast.workspace)) == 1


def test_an_expired_or_revoked_invitation_can_be_sent_again(cast):
    _invite(cast, email="again@c.example")
    with workspace_scope(cast.workspace.pk):
        Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    _invite(cast, email="again@c.example")
    [second, first] = invitations_of(cast.workspace)
    assert first.revoked_at is not None and second.status == "pending"
    with workspace_scope(cast.workspace.pk):
        invitation_revoke(invitation=second)
    issued = _invite(cast, email="again@c.example")
    assert invitation_accept(token=issued.token, user=make_user("again@c.example"))


def test_only_an_owner_invites_an_owner(cast):
    with pytest.raises(ValidationError):
        _invite(cast, role=Role.OWNER, by=cast.admin)
    assert _invite(cast, role=Role.OWNER, by=cast.owner).invitation.role == Role.OWNER


def test_department_of_another_workspace_is_refused(cast):
    from workspaces.models import Department

    with workspace_scope(cast.other_workspace.pk):
        foreign = Department.objects.create(workspace=cast.other_workspace, name="Theirs")
    with pytest.raises(ValidationError) as exc:
        _invite(cast, department=foreign)
    assert "department" in exc.value.message_dict
