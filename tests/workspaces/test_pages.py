"""Workspace pages through Django's test client, as the app role: roles, tenancy, bad input."""

from __future__ import annotations

import pytest

from tests.workspaces.helpers import invitations_of, members_of, token_from_mail
from workspaces.middleware import SESSION_KEY
from workspaces.models import Agent, Department, Invitation, Role
from workspaces.services.invitations import invitation_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope


def _as(client, member):
    client.force_login(member.user)
    return client


@pytest.fixture
def a_objects(cast):
    """An agent and a pending invitation in workspace A (the cast has the department)."""
    with workspace_scope(cast.workspace.pk):
        agent = agent_create(
            workspace=cast.workspace, slug="helper", name="Helper", owner=cast.member
        )
        issued = invitation_create(
            workspace=cast.workspace,
            invited_by=cast.owner,
            email="pending@c.example",
            role=Role.MEMBER,
        )
    return {"department": cast.member.department, "agent": agent, "invitation": issued.invitation}


# --- access ---------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/members/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/members/")


@pytest.mark.parametrize("role", ["owner", "admin", "finance", "member"])
def test_every_role_reads_the_workspace_pages(client, cast, a_objects, role):
    _as(client, cast.by_role(role))
    for url in [
        "/members/",
        "/departments/",
        "/agents/",
        f"/departments/{a_objects['department'].pk}/",
        f"/agents/{a_objects['agent'].pk}/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"Acme" in response.content
    members_page = client.get("/members/").content
    # Only managers see the invite form and pending invitations.
    assert (b"Send invitation" in members_page) == (role in ("owner", "admin"))
    assert (b"pending@c.example" in members_page) == (role in ("owner", "admin"))


def test_outsider_gets_404_for_workspace_a_objects(client, cast, a_objects):
    _as(client, cast.outsider)
    assert client.get(f"/departments/{a_objects['department'].pk}/").status_code == 404
    assert client.get(f"/agents/{a_objects['agent'].pk}/").status_code == 404
    revoke = client.post(f"/members/invitations/{a_objects['invitation'].pk}/revoke/")
    assert revoke.status_code == 404
    # ...the same answer as for ids that exist nowhere, and nothing changed.
    assert client.get("/agents/999999/").status_code == 404
    [invitation] = invitations_of(cast.workspace)
    assert invitation.status == "pending"
    listing = client.get("/agents/").content
    assert b"helper" not in listing and b"Acme" not in listing


def test_a_member_cannot_invite(client, cast):
    _as(client, cast.member)
    response = client.post("/members/invite/", {"email": "x@c.example", "role": Role.ADMIN})
    assert response.status_code == 403
    assert invitations_of(cast.workspace) == []


def test_finance_cannot_create_departments_or_agents(client, cast):
    _as(client, cast.finance)
    assert client.post("/departments/new/", {"name": "Sales"}).status_code == 403
    response = client.post("/agents/new/", {"slug": "x", "name": "X", "owner": cast.finance.pk})
    assert response.status_code == 403
    with workspace_scope(cast.workspace.pk):
        assert not Department.objects.filter(name="Sales").exists()
        assert not Agent.objects.exists()


def test_user_without_a_workspace_is_sent_to_create_one(client, db):
    from tests.cast import make_user

    client.force_login(make_user("lonely@c.example"))
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/workspaces/new/"
    created = client.post("/workspaces/new/", {"name": "Solo", "time_zone": "Europe/Berlin"})
    assert created.status_code == 302
    page = client.get("/members/")
    assert page.status_code == 200 and b"Solo" in page.content


# --- invitations through the pages ----------------------------------------------------------


def test_admin_invites_by_email(client, cast, mailoutbox, django_capture_on_commit_callbacks):
    _as(client, cast.admin)
    eng = cast.member.department
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/members/invite/",
            {"email": "newbie@c.example", "role": Role.FINANCE, "department": eng.pk},
        )
    assert response.status_code == 302
    [invitation] = invitations_of(cast.workspace)
    assert (invitation.email, invitation.role, invitation.department_id) == (
        "newbie@c.example",
        Role.FINANCE,
        eng.pk,
    )
    [message] = mailoutbox
    assert message.to == ["newbie@c.example"]
    assert token_from_mail(message)
    assert b"newbie@c.example" in client.get("/members/").content


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"email": "not an email", "role": "member"}, b"Enter a valid email address"),
        ({"email": "", "role": "member"}, b"This field is required"),
        ({"email": "ok@c.example", "role": "emperor"}, b"Select a valid choice"),
        ({"email": "ok@c.example", "role": "member", "department": "abc"}, b"Select a valid"),
        ({"email": "member@a.example", "role": "member"}, b"already a member"),
        ({"email": "pending@c.example", "role": "member"}, b"pending invitation"),
    ],
)
def test_bad_invite_input_is_a_form_error(client, cast, a_objects, data, error):
    _as(client, cast.owner)
    response = client.post("/members/invite/", data)
    assert response.status_code == 400
    assert error in response.content
    assert len(invitations_of(cast.workspace)) == 1  # only the fixture's


def test_invite_with_a_foreign_department_is_a_form_error(client, cast):
    with workspace_scope(cast.other_workspace.pk):
        foreign = Department.objects.create(workspace=cast.other_workspace, name="Theirs")
    _as(client, cast.owner)
    response = client.post(
        "/members/invite/", {"email": "x@c.example", "role": "member", "department": foreign.pk}
    )
    assert response.status_code == 400
    assert invitations_of(cast.workspace) == []


def test_admin_revokes_an_invitation(client, cast, a_objects):
    _as(client, cast.admin)
    response = client.post(f"/members/invitations/{a_objects['invitation'].pk}/revoke/")
    assert response.status_code == 302
    [invitation] = invitations_of(cast.workspace)
    assert invitation.status == "revoked"


def test_logged_in_invitee_accepts_and_switches_between_workspaces(client, cast):
    with workspace_scope(cast.workspace.pk):
        issued = invitation_create(
            workspace=cast.workspace,
            invited_by=cast.owner,
            email=cast.outsider.user.email,
            role=Role.ADMIN,
            department=cast.member.department,
        )
    _as(client, cast.outsider)
    assert b"Beta" in client.get("/members/").content
    page = client.get(f"/invite/{issued.token}/")
    assert page.status_code == 200 and b"Accept invitation" in page.content
    assert members_of(cast.workspace).get(cast.outsider.user.email) is None  # GET changes nothing

    response = client.post(f"/invite/{issued.token}/")
    assert response.status_code == 302 and response["Location"] == "/"
    joined = members_of(cast.workspace)[cast.outsider.user.email]
    assert joined.role == Role.ADMIN and joined.department_id == cast.member.department_id
    assert client.session[SESSION_KEY] == cast.workspace.pk
    home = client.get("/members/").content
    assert b"Acme" in home and b'name="workspace_id"' in home  # the switcher shows up

    # Switch back to Beta, then to Acme again.
    assert (
        client.post("/workspaces/switch/", {"workspace_id": cast.other_workspace.pk}).status_code
        == 302
    )
    assert client.session[SESSION_KEY] == cast.other_workspace.pk
    assert b"outsider@b.example" in client.get("/members/").content
    assert b"member@a.example" not in client.get("/members/").content
    client.post("/workspaces/switch/", {"workspace_id": cast.workspace.pk})
    assert client.session[SESSION_KEY] == cast.workspace.pk

    # Reused link: the same person is simply taken in; anyone else gets a clear page.
    again = client.post(f"/invite/{issued.token}/")
    assert again.status_code == 302
    assert len([m for m in members_of(cast.workspace) if m == cast.outsider.user.email]) == 1
    _as(client, cast.member)
    reused = client.get(f"/invite/{issued.token}/")
    assert reused.status_code == 410 and b"already used" in reused.content


def test_cannot_switch_to_a_workspace_you_are_not_in(client, cast):
    _as(client, cast.member)
    before = client.get("/members/")  # settles the session on workspace A
    assert before.status_code == 200
    response = client.post("/workspaces/switch/", {"workspace_id": cast.other_workspace.pk})
    assert response.status_code == 404
    assert client.post("/workspaces/switch/", {"workspace_id": "x"}).status_code == 404
    assert client.session[SESSION_KEY] == cast.workspace.pk
    assert client.get("/workspaces/switch/").status_code == 405


def test_switch_ignores_an_offsite_next(client, cast):
    _as(client, cast.owner)
    response = client.post(
        "/workspaces/switch/", {"workspace_id": cast.workspace.pk, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"


def test_wrong_email_expired_and_unknown_links_get_clear_pages(client, cast):
    from datetime import timedelta

    from django.utils import timezone

    with workspace_scope(cast.workspace.pk):
        wrong = invitation_create(
            workspace=cast.workspace, invited_by=cast.owner, email="else@c.example", role="member"
        )
        old = invitation_create(
            workspace=cast.workspace, invited_by=cast.owner, email="old@c.example", role="member"
        )
        Invitation.objects.filter(email="old@c.example").update(
            expires_at=timezone.now() - timedelta(hours=1)
        )
    _as(client, cast.outsider)
    response = client.get(f"/invite/{wrong.token}/")
    assert response.status_code == 403 and b"another email address" in response.content
    response = client.post(f"/invite/{wrong.token}/")
    assert response.status_code == 403
    assert "outsider@b.example" not in members_of(cast.workspace)
    response = client.get(f"/invite/{old.token}/")
    assert response.status_code == 410 and b"expired" in response.content
    response = client.get("/invite/nonsense/")
    assert response.status_code == 404 and b"not valid" in response.content


# --- departments and agents -----------------------------------------------------------------


def test_admin_creates_departments_and_agents(client, cast):
    _as(client, cast.admin)
    assert client.post("/departments/new/", {"name": "Sales"}).status_code == 302
    duplicate = client.post("/departments/new/", {"name": "sales"})
    assert duplicate.status_code == 400 and b"exists" in duplicate.content
    blank = client.post("/departments/new/", {"name": "  "})
    assert blank.status_code == 400

    with workspace_scope(cast.workspace.pk):
        sales = Department.objects.get(name="Sales")
    response = client.post(
        "/agents/new/",
        {"slug": "closer", "name": "Closer", "owner": cast.member.pk, "department": sales.pk},
    )
    assert response.status_code == 302
    with workspace_scope(cast.workspace.pk):
        agent = Agent.objects.get(slug="closer")
    assert (agent.owner_id, agent.department_id) == (cast.member.pk, sales.pk)
    assert response["Location"] == f"/agents/{agent.pk}/"

    taken = client.post("/agents/new/", {"slug": "closer", "name": "X", "owner": cast.member.pk})
    assert taken.status_code == 400 and b"exists" in taken.content
    bad_slug = client.post(
        "/agents/new/", {"slug": "no spaces!", "name": "X", "owner": cast.member.pk}
    )
    assert bad_slug.status_code == 400


def test_agent_owner_from_another_workspace_is_a_form_error(client, cast):
    _as(client, cast.owner)
    response = client.post(
        "/agents/new/", {"slug": "sneaky", "name": "Sneaky", "owner": cast.outsider.pk}
    )
    assert response.status_code == 400 and b"Select a valid choice" in response.content
    with workspace_scope(cast.workspace.pk):
        assert not Agent.objects.filter(slug="sneaky").exists()


# --- member management ----------------------------------------------------------------------


def test_admin_changes_a_members_role_and_department(client, cast):
    _as(client, cast.admin)
    prefix = f"m{cast.finance.pk}"
    response = client.post(
        f"/members/{cast.finance.pk}/update/",
        {f"{prefix}-role": Role.ADMIN, f"{prefix}-department": cast.member.department_id},
    )
    assert response.status_code == 302
    finance = members_of(cast.workspace)["finance@a.example"]
    assert (finance.role, finance.department_id) == (Role.ADMIN, cast.member.department_id)
    page = client.get("/members/")
    assert b"finance@a.example updated" in page.content


def test_the_last_owner_cannot_be_demoted(client, cast):
    _as(client, cast.owner)
    prefix = f"m{cast.owner.pk}"
    response = client.post(f"/members/{cast.owner.pk}/update/", {f"{prefix}-role": Role.MEMBER})
    assert response.status_code == 302
    assert members_of(cast.workspace)["owner@a.example"].role == Role.OWNER
    assert b"at least one owner" in client.get("/members/").content


def test_members_cannot_manage_members_and_outsiders_get_404(client, cast):
    _as(client, cast.member)
    prefix = f"m{cast.member.pk}"
    url = f"/members/{cast.member.pk}/update/"
    assert client.post(url, {f"{prefix}-role": Role.ADMIN}).status_code == 403
    assert client.post(f"/members/{cast.admin.pk}/remove/").status_code == 403
    _as(client, cast.outsider)
    assert client.post(url, {f"{prefix}-role": Role.ADMIN}).status_code == 404
    assert client.post(f"/members/{cast.admin.pk}/remove/").status_code == 404
    members = members_of(cast.workspace)
    assert members["member@a.example"].role == Role.MEMBER and "admin@a.example" in members


def test_admin_removes_a_member_unless_they_own_agents(client, cast):
    with workspace_scope(cast.workspace.pk):
        agent_create(workspace=cast.workspace, slug="mine", name="Mine", owner=cast.member)
    _as(client, cast.admin)
    assert client.post(f"/members/{cast.member.pk}/remove/").status_code == 302
    assert "member@a.example" in members_of(cast.workspace)
    assert b"owns agents" in client.get("/members/").content
    assert client.post(f"/members/{cast.finance.pk}/remove/").status_code == 302
    assert "finance@a.example" not in members_of(cast.workspace)


def test_wrong_account_logs_out_and_lands_back_on_the_link(client, cast):
    with workspace_scope(cast.workspace.pk):
        issued = invitation_create(
            workspace=cast.workspace, invited_by=cast.owner, email="else@c.example", role="member"
        )
    link = f"/invite/{issued.token}/"
    _as(client, cast.outsider)
    assert client.get(link).status_code == 403
    response = client.post("/accounts/logout/", {"next": link})
    assert response.status_code == 302 and response["Location"] == link
    landing = client.get(link)
    assert landing.status_code == 200 and b"Sign up with else@c.example" in landing.content
