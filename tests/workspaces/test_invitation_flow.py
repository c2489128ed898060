"""The whole invitation journey with real commits (no test transaction around it), so the
middleware's per-request scope, `on_commit` email and session hand-offs run as in production."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.cast import build_cast
from tests.workspaces.helpers import members_of, token_from_mail
from workspaces import system
from workspaces.middleware import SESSION_KEY
from workspaces.models import Role
from workspaces.tenancy import current_workspace_id_or_none

PASSWORD = "a-long-and-unusual-passphrase-77"


@pytest.mark.django_db(transaction=True)
def test_invite_signup_and_join_end_to_end(client, mailoutbox):
    cast = build_cast()
    eng = cast.member.department

    client.force_login(cast.admin.user)
    response = client.post(
        "/members/invite/",
        {"email": "Joiner@C.example", "role": Role.MEMBER, "department": eng.pk},
    )
    assert response.status_code == 302
    [message] = mailoutbox  # sent on commit of the request's transaction
    token = token_from_mail(message)
    client.post("/accounts/logout/")

    link = f"/invite/{token}/"
    landing = client.get(link)
    assert landing.status_code == 200 and b"Join Acme" in landing.content
    signup = client.post(
        f"/accounts/signup/?next={link}",
        {"email": "joiner@c.example", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert signup.status_code == 302
    assert client.get(link)["Location"] == "/"

    joined = members_of(cast.workspace)["joiner@c.example"]
    assert (joined.role, joined.department_id) == (Role.MEMBER, eng.pk)
    assert [m.workspace_id for m in system.user_memberships(joined.user_id)] == [cast.workspace.pk]
    assert client.session[SESSION_KEY] == cast.workspace.pk
    page = client.get("/members/")
    assert page.status_code == 200 and b"joiner@c.example" in page.content

    # Nothing leaks out of a request: no Python scope, no Postgres setting on the connection.
    assert current_workspace_id_or_none() is None
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.workspace_id', true)")
        assert cursor.fetchone()[0] in (None, "")
        cursor.execute("SELECT count(*) FROM workspaces_member")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_outsider_404_with_committed_data(client):
    cast = build_cast()
    client.force_login(cast.outsider.user)
    assert client.get(f"/departments/{cast.member.department_id}/").status_code == 404
    client.force_login(cast.owner.user)
    assert client.get(f"/departments/{cast.member.department_id}/").status_code == 200
