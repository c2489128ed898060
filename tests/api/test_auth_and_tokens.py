"""API tokens and sessions: who you are decides the workspace and the role."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import Client

from tests.cast import PASSWORD
from workspaces.middleware import SESSION_KEY
from workspaces.models import APIToken
from workspaces.services.tokens import hash_token
from workspaces.services.workspaces import member_add
from workspaces.tenancy import workspace_scope


def test_token_schemes_and_last_used(api, cast, django_capture_on_commit_callbacks):
    raw = api.tokens["member"]
    for header in (f"Bearer {raw}", f"Token {raw}"):
        # last_used_at is written after the request commits (see api_token_authenticate)
        with django_capture_on_commit_callbacks(execute=True):
            r = Client().get("/api/v1/members/", HTTP_AUTHORIZATION=header)
        assert r.status_code == 200
    with workspace_scope(cast.workspace.pk):
        token = APIToken.objects.get(token_hash=hash_token(raw))
        assert token.last_used_at is not None
        assert raw not in json.dumps(list(APIToken.objects.values()), default=str)


@pytest.mark.parametrize(
    "header",
    [
        "Bearer alpt_nope_nope",
        "Bearer ",
        "Bearer alph_notatoken",
        "Token x" * 50,
    ],
)
def test_bad_tokens_are_401(api, header):
    r = Client().get("/api/v1/members/", HTTP_AUTHORIZATION=header)
    assert r.status_code == 401
    assert r.json()["error"]["type"] in {"authentication_failed", "not_authenticated"}


def test_revoked_and_expired_tokens_stop_working(api, cast):
    created = api.call(
        "member", "post", "/api/v1/api-tokens/", {"name": "tmp", "scope": "read"}
    ).json()
    raw = created["token"]
    assert raw.startswith("alpt_") and created["prefix"] == raw[:13]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/departments/").status_code == 200
    assert "token" not in api.call("member", "get", f"/api/v1/api-tokens/{created['id']}/").json()
    assert (
        api.call("member", "post", f"/api/v1/api-tokens/{created['id']}/revoke/").status_code == 200
    )
    assert client.get("/api/v1/departments/").status_code == 401
    with workspace_scope(cast.workspace.pk):
        token = APIToken.objects.get(pk=created["id"])
        APIToken.objects.filter(pk=token.pk).update(revoked_at=None, expires_at="2001-01-01T00:00Z")
    assert client.get("/api/v1/departments/").status_code == 401


def test_token_acts_with_the_members_current_role(api, cast):
    assert api.call("member", "get", "/api/v1/provider-keys/").status_code == 403
    assert (
        api.call(
            "owner", "patch", f"/api/v1/members/{cast.member.pk}/", {"role": "admin"}
        ).status_code
        == 200
    )
    assert api.call("member", "get", "/api/v1/provider-keys/").status_code == 200


def test_removed_member_token_is_dead(api, cast):
    assert api.call("owner", "delete", f"/api/v1/members/{cast.member.pk}/").status_code == 204
    assert api.call("member", "get", "/api/v1/members/").status_code == 401


def test_session_uses_the_workspace_chosen_in_the_session(cast):
    # The outsider also joins workspace A as a plain member.
    with workspace_scope(cast.workspace.pk):
        member_add(workspace=cast.workspace, user=cast.outsider.user, role="member")
    client = Client()
    assert client.login(email=cast.outsider.user.email, password=PASSWORD)
    session = client.session
    session[SESSION_KEY] = cast.other_workspace.pk
    session.save()
    ids = {m["id"] for m in client.get("/api/v1/members/").json()["results"]}
    assert ids == {cast.outsider.pk}
    assert client.get("/api/v1/provider-keys/").status_code == 200  # owner in B
    session[SESSION_KEY] = cast.workspace.pk
    session.save()
    assert client.get("/api/v1/members/").json()["count"] == 5
    assert client.get("/api/v1/provider-keys/").status_code == 403  # member in A


def test_session_writes_need_csrf(cast):
    client = Client(enforce_csrf_checks=True)
    assert client.login(email=cast.owner.user.email, password=PASSWORD)
    r = client.post("/api/v1/departments/", data={"name": "x"}, content_type="application/json")
    assert r.status_code == 403


def test_member_role_rules(api, cast):
    # admins cannot make owners or touch an owner; the last owner cannot be demoted
    assert (
        api.call(
            "admin", "patch", f"/api/v1/members/{cast.member.pk}/", {"role": "owner"}
        ).status_code
        == 403
    )
    assert api.call("admin", "delete", f"/api/v1/members/{cast.owner.pk}/").status_code == 403
    r = api.call("owner", "patch", f"/api/v1/members/{cast.owner.pk}/", {"role": "admin"})
    assert r.status_code == 400 and "role" in r.json()["error"]["fields"]
    r = api.call("owner", "patch", f"/api/v1/members/{cast.member.pk}/", {"role": "emperor"})
    assert r.status_code == 400 and "role" in r.json()["error"]["fields"]


def test_member_with_agents_cannot_be_removed(api, cast, world):
    r = api.call("owner", "delete", f"/api/v1/members/{cast.member.pk}/")
    assert r.status_code == 400
    assert "agents" in r.json()["error"]["fields"]["non_field_errors"][0]


def test_create_workspace_command(db, capsys):
    call_command(
        "create_workspace", "--name", "Boot", "--owner-email", "Boot@Example.com", "--json"
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"workspace_id", "user_id", "api_token"}
    client = Client(HTTP_AUTHORIZATION=f"Bearer {out['api_token']}")
    page = client.get("/api/v1/members/").json()
    assert page["count"] == 1
    assert page["results"][0]["email"] == "boot@example.com"
    assert page["results"][0]["role"] == "owner"
    created = client.post(
        "/api/v1/provider-keys/",
        data=json.dumps({"provider": "anthropic", "name": "main", "secret": "sk-ant-xxxxxxxxxxxx"}),
        content_type="application/json",
    )
    assert created.status_code == 201
