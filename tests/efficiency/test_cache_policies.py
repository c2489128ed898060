"""Response-cache opt-ins: API roles, cross-tenant ids, and the snapshot the gateway reads."""

from __future__ import annotations

import json

from django.test import Client

from efficiency.models import ResponseCachePolicy
from gateway.hotpath import cache
from gateway.services.keys import gateway_key_create
from gateway.snapshots import build_workspace_snapshot
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

URL = "/api/v1/efficiency/cache-policies/"


def _tokens(cast):
    out = {}
    for role in ("owner", "admin", "finance", "member", "outsider"):
        m = cast.by_role(role)
        with workspace_scope(m.workspace_id):
            out[role] = api_token_create(member=m, name=role)[1]
    return out


def _call(token, method, path, data=None):
    kwargs = {"data": json.dumps(data), "content_type": "application/json"} if data else {}
    return getattr(Client(), method)(path, HTTP_AUTHORIZATION=f"Bearer {token}", **kwargs)


def test_policies_by_role_reach_the_gateway_snapshot(cast):
    tokens = _tokens(cast)
    with workspace_scope(cast.workspace.pk):
        agent = agent_create(workspace=cast.workspace, slug="bot", name="Bot", owner=cast.member)
        key, _ = gateway_key_create(workspace=cast.workspace, name="k", member=cast.member)
    with workspace_scope(cast.other_workspace.pk):
        b_key, _ = gateway_key_create(
            workspace=cast.other_workspace, name="b", member=cast.outsider
        )

    for role in ("finance", "member"):
        assert _call(tokens[role], "post", URL, {"scope": "workspace"}).status_code == 403
    ws = _call(tokens["admin"], "post", URL, {"scope": "workspace", "ttl_seconds": 600})
    assert ws.status_code == 201, ws.content
    assert (
        _call(
            tokens["owner"], "post", URL, {"scope": "agent", "agent_id": agent.pk, "enabled": False}
        ).status_code
        == 201
    )
    assert (
        _call(
            tokens["owner"],
            "post",
            URL,
            {"scope": "key", "gateway_key_id": key.pk, "ttl_seconds": 60},
        ).status_code
        == 201
    )
    # Another workspace's key: the same answer as a missing one, and nothing written.
    foreign = _call(tokens["owner"], "post", URL, {"scope": "key", "gateway_key_id": b_key.pk})
    assert foreign.status_code == 400 and "gateway_key_id" in foreign.json()["error"]["fields"]
    assert _call(tokens["finance"], "get", URL).json()["count"] == 3

    snapshot = build_workspace_snapshot(cast.workspace.pk)
    section = snapshot["settings"]["response_cache"]
    assert section == {
        "workspace": {"enabled": True, "ttl_s": 600},
        "keys": {str(key.pk): {"enabled": True, "ttl_s": 60}},
        "agents": {str(agent.pk): {"enabled": False, "ttl_s": 3600}},
    }
    assert cache.ttl_for(snapshot, {"key_id": key.pk}, None, None) == 60
    assert cache.ttl_for(snapshot, {"key_id": 0}, agent.pk, None) == 0
    assert cache.ttl_for(snapshot, {"key_id": 0}, None, None) == 600
    assert build_workspace_snapshot(cast.other_workspace.pk)["settings"]["response_cache"] == {
        "workspace": None,
        "keys": {},
        "agents": {},
    }

    # Deleting: a foreign id is a 404 and changes nothing.
    policy_id = ws.json()["id"]
    assert _call(tokens["outsider"], "delete", f"{URL}{policy_id}/").status_code == 404
    with workspace_scope(cast.workspace.pk):
        assert ResponseCachePolicy.objects.count() == 3
    assert _call(tokens["admin"], "delete", f"{URL}{policy_id}/").status_code == 204
    with workspace_scope(cast.workspace.pk):
        assert ResponseCachePolicy.objects.count() == 2


def test_workspace_cache_switch_on_the_ranking_page(cast):
    admin, finance = Client(), Client()
    admin.force_login(cast.admin.user)
    finance.force_login(cast.finance.user)
    assert finance.post("/efficiency/cache/", {"enabled": "on"}).status_code == 403
    assert (
        admin.post("/efficiency/cache/", {"enabled": "on", "ttl_seconds": "900"}).status_code == 302
    )
    html = finance.get("/efficiency/").content.decode()
    assert "on, 900 s" in html and 'action="/efficiency/cache/"' not in html
    assert 'action="/efficiency/cache/"' in admin.get("/efficiency/").content.decode()
    with workspace_scope(cast.workspace.pk):
        policy = ResponseCachePolicy.objects.get(scope="workspace")
    assert (policy.enabled, policy.ttl_seconds) == (True, 900)
    admin.post("/efficiency/cache/", {"ttl_seconds": "900"})  # unchecked: off
    snapshot = build_workspace_snapshot(cast.workspace.pk)
    assert snapshot["settings"]["response_cache"]["workspace"] == {"enabled": False, "ttl_s": 900}
    assert cache.ttl_for(snapshot, {"key_id": 1}, None, None) == 0
