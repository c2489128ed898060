"""GET /api/v1/spend: totals equal the ledger; members see only their own; tokens are scoped."""

from __future__ import annotations

from decimal import Decimal

import pytest

from workspaces.services.tokens import api_token_create
from workspaces.tenancy import workspace_scope


def _token(member) -> str:
    with workspace_scope(member.workspace_id):
        _token, raw = api_token_create(member=member, name="t")
    return raw


def _get(client, member, query=""):
    return client.get(f"/api/v1/spend{query}", HTTP_AUTHORIZATION=f"Bearer {_token(member)}")


@pytest.mark.parametrize("role", ["owner", "admin", "finance"])
def test_readers_get_the_workspace_by_member(client, world, role):
    response = _get(client, world.cast.by_role(role))
    assert response.status_code == 200
    body = response.json()
    assert Decimal(body["total"]["cost_usd"]) == Decimal("3.750000000001")
    groups = {g["label"]: Decimal(g["totals"]["cost_usd"]) for g in body["groups"]}
    assert groups == {
        "member@a.example": Decimal("1.75"),
        "admin@a.example": Decimal("2.000000000001"),
    }
    by_model = _get(client, world.cast.by_role(role), "?group_by=model").json()
    assert {g["key"] for g in by_model["groups"]} == {
        "openai/gpt-4o-mini",
        "openai/gpt-4o",
        "anthropic/claude-3-5-haiku",
    }


def test_member_gets_own_spend_only(client, world):
    body = _get(client, world.cast.member, "?group_by=member").json()
    assert Decimal(body["total"]["cost_usd"]) == Decimal("1.75")
    assert body["group_by"] == "model"
    assert "admin@a.example" not in str(body)


def test_outsider_token_sees_only_its_workspace(client, world):
    body = _get(client, world.cast.outsider).json()
    assert Decimal(body["total"]["cost_usd"]) == Decimal(99)


def test_bad_group_and_no_token(client, world):
    assert _get(client, world.cast.owner, "?group_by=nope").status_code == 400
    assert client.get("/api/v1/spend").status_code == 401
