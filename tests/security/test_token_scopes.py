"""API-token scopes: a leaked read token cannot mint tokens or change keys; write cannot manage people."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.api.conftest import Api
from workspaces.models import APIToken, TokenScope
from workspaces.services.tokens import api_token_create
from workspaces.tenancy import workspace_scope

KEYS = "/api/v1/provider-keys/"


@pytest.fixture
def scoped_api(cast) -> Api:
    """The owner's powers behind each scope: only the scope differs."""
    tokens = {}
    with workspace_scope(cast.workspace.pk):
        for scope in TokenScope.values:
            _, tokens[scope] = api_token_create(member=cast.owner, name=scope, scope=scope)
    return Api(tokens)


def test_read_token_reads_but_cannot_change_or_mint(scoped_api, world):
    api = scoped_api
    assert api.call("read", "get", KEYS).status_code == 200
    assert api.call("read", "get", "/api/v1/members/").status_code == 200
    key = f"{KEYS}{world.provider_key.pk}/"
    for method, path, body in [
        ("post", "/api/v1/api-tokens/", {"name": "escalate", "scope": "admin"}),
        ("post", KEYS, {"provider": "openai", "name": "n", "secret": "sk-x"}),
        ("patch", key, {"name": "renamed"}),
        ("delete", key, None),
        ("post", f"{key}test/", None),
        ("post", "/api/v1/gateway-keys/", {"name": "k"}),
    ]:
        response = api.call("read", method, path, body)
        assert response.status_code == 403, (method, path, response.content)
        assert "scope" in response.json()["error"]["message"]


def test_write_token_changes_keys_but_not_people_or_tokens(scoped_api, cast, world):
    api = scoped_api
    key = f"{KEYS}{world.provider_key.pk}/"
    assert api.call("write", "patch", key, {"name": "renamed"}).status_code == 200
    for method, path, body in [
        ("post", "/api/v1/api-tokens/", {"name": "more", "scope": "write"}),
        ("patch", f"/api/v1/members/{cast.member.pk}/", {"role": "admin"}),
        ("delete", f"/api/v1/members/{cast.member.pk}/", None),
        ("post", "/api/v1/invitations/", {"email": "x@evil.example", "role": "admin"}),
        ("post", f"/api/v1/api-tokens/{world.api_token.pk}/revoke/", None),
    ]:
        assert api.call("write", method, path, body).status_code == 403, (method, path)


def test_admin_token_keeps_the_full_role(scoped_api):
    created = scoped_api.call(
        "admin", "post", "/api/v1/api-tokens/", {"name": "ci", "scope": "write"}
    )
    assert created.status_code == 201 and created.json()["scope"] == "write"


def test_new_tokens_must_pick_a_scope(api):
    response = api.call("member", "post", "/api/v1/api-tokens/", {"name": "no scope"})
    assert response.status_code == 400
    assert "scope" in response.json()["error"]["fields"]
    bogus = api.call("member", "post", "/api/v1/api-tokens/", {"name": "x", "scope": "root"})
    assert bogus.status_code == 400


def test_scope_never_exceeds_the_role(cast):
    with workspace_scope(cast.workspace.pk):
        _, raw = api_token_create(member=cast.member, name="m", scope="admin")
    response = Client().post(
        "/api/v1/invitations/",
        data={"email": "x@a.example", "role": "member"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 403


def test_existing_tokens_became_admin_by_migration():
    migration = __import__("workspaces.migrations.0005_apitoken_scope", fromlist=["Migration"])
    add_field = migration.Migration.operations[0]
    assert add_field.field.default == "admin"
    assert APIToken._meta.get_field("scope").default == "read"
