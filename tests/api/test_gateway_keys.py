"""Gateway keys over the API: shown once, hashed, snapshot published, revocation visible."""

from __future__ import annotations

import json

import pytest
from django.conf import settings as django_settings

from core import keyhash
from gateway.models import GatewayKey
from workspaces.tenancy import workspace_scope

URL = "/api/v1/gateway-keys/"


def test_key_shown_once_and_only_hash_stored(api, cast):
    response = api.call(
        "member",
        "post",
        URL,
        {
            "name": "laptop",
            "member_id": cast.member.pk,
            "allowed_models": ["gpt-4o-mini"],
            "rpm": 60,
            "tpm": 100000,
            "expires_at": "2099-01-01T00:00:00Z",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    raw = body["key"]
    assert {"id", "prefix", "key"} <= set(body)
    assert keyhash.looks_like_key(raw) and raw.startswith(body["prefix"] + "_")
    assert body["allowed_models"] == ["gpt-4o-mini"] and body["rpm"] == 60
    assert raw not in api.call("member", "get", URL).content.decode()
    assert "key" not in api.call("member", "get", f"{URL}{body['id']}/").json()
    with workspace_scope(cast.workspace.pk):
        stored = GatewayKey.objects.get(pk=body["id"])
        assert stored.key_hash == keyhash.hash_key(raw, django_settings.ALEPHANT_KEY_HASH_SECRET)
        assert raw not in json.dumps(list(GatewayKey.objects.values()), default=str)


def test_agent_key_and_exactly_one_holder(api, cast, world):
    response = api.call("member", "post", URL, {"name": "bot", "agent_id": world.agent.pk})
    assert response.status_code == 201
    assert response.json()["agent_id"] == world.agent.pk
    both = api.call(
        "owner", "post", URL, {"name": "x", "member_id": cast.member.pk, "agent_id": world.agent.pk}
    )
    neither = api.call("owner", "post", URL, {"name": "x"})
    for r in (both, neither):
        assert r.status_code == 400 and "member_id" in r.json()["error"]["fields"]
    # finance does not own the agent
    assert (
        api.call("finance", "post", URL, {"name": "x", "agent_id": world.agent.pk}).status_code
        == 403
    )


@pytest.mark.django_db(transaction=True)
def test_revoke_publishes_the_revoked_marker(api, cast, redis_client):
    created = api.call("owner", "post", URL, {"name": "k", "member_id": cast.admin.pk}).json()
    with workspace_scope(cast.workspace.pk):
        key_hash = GatewayKey.objects.get(pk=created["id"]).key_hash
    snap = json.loads(redis_client.get(f"alephant:gk:{key_hash}"))
    assert snap["revoked"] is False and snap["member_id"] == cast.admin.pk
    response = api.call("admin", "post", f"{URL}{created['id']}/revoke/")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert json.loads(redis_client.get(f"alephant:gk:{key_hash}")) == {"v": 1, "revoked": True}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"rpm": 0}, "rpm"),
        ({"rpm": "many"}, "rpm"),
        ({"allowed_models": "gpt-4o"}, "allowed_models"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"member_id": 0}, "member_id"),
        ({"member_id": 10**30}, "member_id"),
    ],
)
def test_bad_input(api, cast, body, field):
    response = api.call("owner", "post", URL, {"name": "k", "member_id": cast.member.pk, **body})
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_holder_cannot_lift_limits_an_admin_set(api, cast):
    issued = api.call(
        "admin", "post", URL, {"name": "capped", "member_id": cast.member.pk, "rpm": 10}
    ).json()
    path = f"{URL}{issued['id']}/"
    assert api.call("member", "get", path).status_code == 200
    assert api.call("member", "patch", path, {"rpm": None}).status_code == 403
    assert api.call("member", "get", path).json()["rpm"] == 10
    assert api.call("admin", "patch", path, {"rpm": 20}).status_code == 200
    assert api.call("member", "post", f"{path}revoke/").status_code == 200
