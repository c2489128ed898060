"""Accounts through allauth's real views: sign-up onboarding, invited sign-up, login throttling,
password reset, TOTP MFA."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress

from tests.cast import PASSWORD, make_user
from tests.workspaces.helpers import members_of
from workspaces import system
from workspaces.middleware import SESSION_KEY
from workspaces.models import Role
from workspaces.services.accounts import default_workspace_name
from workspaces.services.invitations import invitation_create
from workspaces.tenancy import workspace_scope

NEW_PASSWORD = "a-long-and-unusual-passphrase-77"


def _signup(client, email, workspace_name="", next_url=""):
    data = {"email": email, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    if workspace_name:
        data["workspace_name"] = workspace_name
    url = "/accounts/signup/" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data)


def _is_logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_signup_creates_a_workspace_with_the_signer_as_owner(client, db):
    response = _signup(client, "ada@acme-labs.example", workspace_name="Analytical Engines")
    assert response.status_code == 302
    from workspaces.models import User

    user = User.objects.get(email="ada@acme-labs.example")
    [membership] = system.user_memberships(user.pk)
    assert membership.workspace_name == "Analytical Engines"
    assert membership.role == Role.OWNER
    assert client.session[SESSION_KEY] == membership.workspace_id
    page = client.get("/members/")
    assert page.status_code == 200 and b"Analytical Engines" in page.content


def test_signup_without_a_name_gets_one_from_the_email(client, db):
    assert _signup(client, "grace@navy-labs.example").status_code == 302
    from workspaces.models import User

    user = User.objects.get(email="grace@navy-labs.example")
    [membership] = system.user_memberships(user.pk)
    assert membership.workspace_name == "Navy Labs"


@pytest.mark.parametrize(
    ("email", "name"),
    [
        ("ada@acme-labs.io", "Acme Labs"),
        ("ada.lovelace@gmail.com", "Ada Lovelace's workspace"),
        ("x+tag@outlook.com", "X's workspace"),
    ],
)
def test_default_workspace_name(email, name):
    assert default_workspace_name(email) == name


def test_signup_page_shows_the_workspace_field(client, db):
    page = client.get("/accounts/signup/")
    assert page.status_code == 200
    assert b'name="workspace_name"' in page.content
    assert b"app.css" in page.content  # allauth pages use the app layout


def test_invited_signup_joins_the_inviting_workspace_only(client, cast):
    eng = cast.member.department
    with workspace_scope(cast.workspace.pk):
        issued = invitation_create(
            workspace=cast.workspace,
            invited_by=cast.admin,
            email="invitee@c.example",
            role=Role.FINANCE,
            department=eng,
        )
    link = f"/invite/{issued.token}/"
    page = client.get(link)
    assert page.status_code == 200
    assert b"Sign up with invitee@c.example" in page.content
    signup_page = client.get(f"/accounts/signup/?email=invitee%40c.example&next={link}")
    assert b"You are joining" in signup_page.content and b"Acme" in signup_page.content
    assert b'name="workspace_name"' not in signup_page.content
    assert b'value="invitee@c.example"' in signup_page.content

    response = _signup(client, "invitee@c.example", next_url=link)
    assert response.status_code == 302 and response["Location"] == link
    member = members_of(cast.workspace)["invitee@c.example"]
    assert (member.role, member.department_id) == (Role.FINANCE, eng.pk)
    # No personal workspace for an invited sign-up.
    assert [m.workspace_id for m in system.user_memberships(member.user_id)] == [cast.workspace.pk]
    # Opening the emailed link proved the address.
    assert EmailAddress.objects.get(email="invitee@c.example").verified
    # Back at the link: straight in.
    back = client.get(link)
    assert back.status_code == 302 and back["Location"] == "/"
    assert client.session[SESSION_KEY] == cast.workspace.pk


def test_signup_with_another_email_after_opening_a_link_gets_its_own_workspace(client, cast):
    with workspace_scope(cast.workspace.pk):
        issued = invitation_create(
            workspace=cast.workspace, invited_by=cast.owner, email="bob@c.example", role="member"
        )
    client.get(f"/invite/{issued.token}/")
    assert _signup(client, "eve@e.example", workspace_name="Eve Inc").status_code == 302
    from workspaces.models import User

    eve = User.objects.get(email="eve@e.example")
    assert [m.workspace_name for m in system.user_memberships(eve.pk)] == ["Eve Inc"]
    assert "eve@e.example" not in members_of(cast.workspace)
    assert not EmailAddress.objects.get(email="eve@e.example").verified
    assert not EmailAddress.objects.filter(email="bob@c.example").exists()
    page = client.get(f"/invite/{issued.token}/")
    assert page.status_code == 403 and b"another email address" in page.content


def test_logged_out_visitor_logs_in_and_comes_back_to_the_link(client, cast):
    with workspace_scope(cast.workspace.pk):
        issued = invitation_create(
            workspace=cast.workspace,
            invited_by=cast.owner,
            email=cast.outsider.user.email,
            role="member",
        )
    link = f"/invite/{issued.token}/"
    page = client.get(link)
    assert f"/accounts/login/?next=%2Finvite%2F{issued.token}%2F".encode() in page.content
    response = client.post(
        f"/accounts/login/?next={link}",
        {"login": cast.outsider.user.email, "password": PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == link
    assert client.post(link).status_code == 302
    assert cast.outsider.user.email in members_of(cast.workspace)


def test_login_is_throttled_after_repeated_failures(client, cast, redis_client):
    email = cast.member.user.email
    for _ in range(5):
        response = client.post("/accounts/login/", {"login": email, "password": "wrong-password"})
        assert response.status_code == 200 and not _is_logged_in(client)
    refused = client.post("/accounts/login/", {"login": email, "password": PASSWORD})
    assert refused.status_code == 200
    assert b"Too many failed login attempts" in refused.content
    assert not _is_logged_in(client)
    # Another account from the same client is not locked out by this one's failures.
    other = client.post("/accounts/login/", {"login": cast.admin.user.email, "password": PASSWORD})
    assert other.status_code == 302 and _is_logged_in(client)


def test_login_and_logout(client, cast, redis_client):
    response = client.post(
        "/accounts/login/", {"login": cast.owner.user.email.upper(), "password": PASSWORD}
    )
    assert response.status_code == 302 and _is_logged_in(client)
    assert client.post("/accounts/logout/").status_code == 302
    assert not _is_logged_in(client)


def test_password_reset_sends_a_working_link(client, cast, mailoutbox, redis_client):
    response = client.post("/accounts/password/reset/", {"email": cast.member.user.email})
    assert response.status_code == 302
    [message] = mailoutbox
    assert message.to == [cast.member.user.email]
    import re

    link = re.search(r"http://[^/\s]+(/accounts/password/reset/key/\S+)", message.body).group(1)
    follow = client.get(link, follow=True)
    form_url = follow.redirect_chain[-1][0] if follow.redirect_chain else link
    done = client.post(form_url, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert done.status_code == 302
    cast.member.user.refresh_from_db()
    assert cast.member.user.check_password(NEW_PASSWORD)


def test_email_verification_mail_is_sent_on_signup(client, db, mailoutbox):
    _signup(client, "verify-me@v.example")
    assert any("verify-me@v.example" in m.to for m in mailoutbox)
    assert any("/accounts/confirm-email/" in m.body for m in mailoutbox)


def test_totp_can_be_activated_and_is_then_required_at_login(client, cast, redis_client):
    from allauth.mfa.totp.internal import auth as totp

    client.post("/accounts/login/", {"login": cast.admin.user.email, "password": PASSWORD})
    assert client.get("/accounts/2fa/").status_code == 200
    # Adding a second factor asks for the password again first.
    gate = client.get("/accounts/2fa/totp/activate/")
    assert gate.status_code == 302 and gate["Location"].startswith("/accounts/reauthenticate/")
    assert client.post(gate["Location"], {"password": PASSWORD}).status_code == 302
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200 and b"app.css" in page.content
    secret = client.session[totp.SECRET_SESSION_KEY]
    counter = next(iter(totp.yield_hotp_counters_from_time()))
    code = totp.format_hotp_value(totp.hotp_value(secret, counter))
    activated = client.post("/accounts/2fa/totp/activate/", {"code": code})
    assert activated.status_code == 302
    assert client.get("/accounts/2fa/").status_code == 200

    client.post("/accounts/logout/")
    second = client.post("/accounts/login/", {"login": cast.admin.user.email, "password": PASSWORD})
    assert second.status_code == 302 and second["Location"] == "/accounts/2fa/authenticate/"
    assert not _is_logged_in(client)


def test_members_page_requires_a_login_even_for_existing_users(client, db):
    make_user("plain@p.example")
    assert client.get("/members/").status_code == 302


def test_invited_signup_with_bad_input_shows_errors(client, cast):
    with workspace_scope(cast.workspace.pk):
        issued = invitation_create(
            workspace=cast.workspace, invited_by=cast.owner, email="typo@c.example", role="member"
        )
    client.get(f"/invite/{issued.token}/")
    response = client.post(
        "/accounts/signup/",
        {"email": "typo@c.example", "password1": NEW_PASSWORD, "password2": "different-one-1"},
    )
    assert response.status_code == 200
    assert b"You must type the same password each time" in response.content
    assert "typo@c.example" not in members_of(cast.workspace)
