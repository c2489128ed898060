"""Who may join (ALEPHANT_SIGNUP), and sign-up / password reset reveal no addresses.

A stranger on a self-hosted instance must not become an owner (and from there aim provider keys
at internal hosts): `invite` admits the first account of an empty instance, then invitation links
for the invited address only; `closed` admits nobody through the web.
"""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from tests.cast import PASSWORD, build_cast
from workspaces.middleware import SESSION_KEY
from workspaces.models import Invitation, Member, Role, User
from workspaces.services.invitations import invitation_create
from workspaces.tenancy import workspace_scope

NEW_PASSWORD = "a-long-and-unusual-passphrase-77"


def _signup(client: Client, email: str, next_url: str = ""):
    url = "/accounts/signup/" + (f"?next={next_url}" if next_url else "")
    return client.post(url, {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})


def _invite(cast, email: str) -> str:
    with workspace_scope(cast.workspace.pk):
        issued = invitation_create(
            workspace=cast.workspace, invited_by=cast.admin, email=email, role="member"
        )
    return issued.token


@pytest.fixture
def fresh(redis_client, db):
    """An empty allauth rate-limit history (it lives in the Redis cache) and a database."""
    return Client()


@override_settings(ALEPHANT_SIGNUP="invite")
def test_invite_mode_the_first_account_bootstraps_an_empty_instance(fresh):
    assert not User.objects.exists()
    response = _signup(fresh, "founder@self.hosted")
    assert response.status_code == 302
    founder = User.objects.get(email="founder@self.hosted")
    workspace_id = fresh.session[SESSION_KEY]
    with workspace_scope(workspace_id):
        assert Member.objects.get(workspace_id=workspace_id, user=founder).role == Role.OWNER
    # The instance is no longer empty: the next stranger meets a closed door.
    _signup(Client(), "second@self.hosted")
    assert not User.objects.filter(email="second@self.hosted").exists()


@override_settings(ALEPHANT_SIGNUP="invite")
def test_invite_mode_a_stranger_cannot_sign_up(fresh):
    build_cast()
    page = fresh.get("/accounts/signup/")
    assert b'name="password1"' not in page.content  # the closed page, not the form
    response = _signup(fresh, "stranger@evil.example")
    assert response.status_code in (200, 403)
    assert not User.objects.filter(email="stranger@evil.example").exists()


@override_settings(ALEPHANT_SIGNUP="invite")
def test_invite_mode_a_link_admits_only_the_invited_address(fresh):
    cast = build_cast()
    token = _invite(cast, "joiner@c.example")
    link = f"/invite/{token}/"
    assert fresh.get(link).status_code == 200  # the landing page remembers the invitation
    wrong = _signup(fresh, "link-holder@evil.example", link)
    assert wrong.status_code == 200 and b"address this invitation was sent to" in wrong.content
    assert not User.objects.filter(email="link-holder@evil.example").exists()
    right = _signup(fresh, "joiner@c.example", link)
    assert right.status_code == 302
    joiner = User.objects.get(email="joiner@c.example")
    with workspace_scope(cast.workspace.pk):
        assert Member.objects.filter(workspace=cast.workspace, user=joiner).exists()


@override_settings(ALEPHANT_SIGNUP="invite")
def test_invite_mode_a_withdrawn_link_admits_nobody(fresh):
    cast = build_cast()
    token = _invite(cast, "late@c.example")
    fresh.get(f"/invite/{token}/")
    with workspace_scope(cast.workspace.pk):
        Invitation.objects.filter(workspace=cast.workspace).update(revoked_at=timezone.now())
    _signup(fresh, "late@c.example", f"/invite/{token}/")
    assert not User.objects.filter(email="late@c.example").exists()


@override_settings(ALEPHANT_SIGNUP="closed")
def test_closed_mode_admits_nobody_even_with_an_invitation(fresh):
    assert _signup(fresh, "first@self.hosted").status_code in (200, 403)
    cast = build_cast()
    token = _invite(cast, "joiner@c.example")
    fresh.get(f"/invite/{token}/")
    _signup(fresh, "joiner@c.example", f"/invite/{token}/")
    assert not User.objects.filter(email__in=["first@self.hosted", "joiner@c.example"]).exists()


def _shape(response) -> tuple[int, str, bool]:
    return (
        response.status_code,
        response.get("Location", ""),
        b"already" in response.content.lower() or b"exists" in response.content.lower(),
    )


@override_settings(ALEPHANT_SIGNUP="open", ACCOUNT_EMAIL_VERIFICATION="mandatory")
def test_open_sign_up_answers_the_same_for_a_taken_and_a_new_address(fresh, mailoutbox):
    cast = build_cast()
    taken = _signup(fresh, cast.member.user.email)
    new = _signup(Client(), "brand-new@c.example")
    assert _shape(taken) == _shape(new)
    assert taken.status_code == 302 and not _shape(taken)[2]
    assert User.objects.filter(email=cast.member.user.email).count() == 1
    # The owner of the taken address is told by mail, not the stranger on the page.
    assert any(cast.member.user.email in m.to for m in mailoutbox)


def test_password_reset_answers_the_same_for_known_and_unknown_addresses(fresh, mailoutbox):
    cast = build_cast()
    known = fresh.post("/accounts/password/reset/", {"email": cast.member.user.email})
    unknown = Client().post("/accounts/password/reset/", {"email": "nobody@nowhere.example"})
    assert (known.status_code, known.get("Location")) == (
        unknown.status_code,
        unknown.get("Location"),
    )
    assert known.status_code == 302
    assert PASSWORD  # the cast's accounts are real: the known address did get a reset link
    assert any(cast.member.user.email in m.to for m in mailoutbox)
