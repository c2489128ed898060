"""`GET /api/v1/usage`: pages through the ledger, scoped to the workspace and the reader's role."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import UsageRecordFactory
from workspaces.services.tokens import api_token_create
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db


def api(member) -> APIClient:
    with workspace_scope(member.workspace_id):
        _token, raw = api_token_create(member=member, name="t")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def row(workspace_id, request_id, member_id=None, **extra):
    with workspace_scope(workspace_id):
        return UsageRecordFactory(
            workspace_id=workspace_id,
            request_id=request_id,
            member_id=member_id,
            endpoint="chat",
            input_tokens=10,
            output_tokens=5,
            cost_usd=Decimal("0.000004500000"),
            **extra,
        )


def test_usage_list_paginates_and_scopes_by_role_and_workspace(cast):
    now = timezone.now()
    mine = row(cast.workspace.pk, "r-member", cast.member.pk, created_at=now)
    row(cast.workspace.pk, "r-admin", cast.admin.pk, created_at=now - dt.timedelta(hours=2))
    foreign = row(cast.other_workspace.pk, "r-foreign", cast.outsider.pk)

    owner = api(cast.owner).get("/api/v1/usage/?limit=1")
    assert owner.status_code == 200, owner.content
    assert owner.json()["count"] == 2 and len(owner.json()["results"]) == 1
    assert owner.json()["results"][0]["request_id"] == "r-member"  # newest first
    assert owner.json()["results"][0]["cost_usd"] == "0.000004500000"

    finance = api(cast.finance).get(f"/api/v1/usage/?member_id={cast.admin.pk}").json()
    assert [r["request_id"] for r in finance["results"]] == ["r-admin"]
    since = (now - dt.timedelta(hours=1)).isoformat()
    recent = api(cast.finance).get("/api/v1/usage/", {"since": since}).json()
    assert [r["request_id"] for r in recent["results"]] == ["r-member"]
    assert api(cast.finance).get("/api/v1/usage/?since=yesterday").status_code == 400

    member = api(cast.member).get("/api/v1/usage/").json()
    assert [r["request_id"] for r in member["results"]] == ["r-member"]
    assert api(cast.member).get(f"/api/v1/usage/{mine.pk}/").status_code == 200

    outsider = api(cast.outsider)
    assert [r["request_id"] for r in outsider.get("/api/v1/usage/").json()["results"]] == [
        "r-foreign"
    ]
    assert outsider.get(f"/api/v1/usage/{mine.pk}/").status_code == 404
    assert api(cast.owner).get(f"/api/v1/usage/{foreign.pk}/").status_code == 404
    assert APIClient().get("/api/v1/usage/").status_code in (401, 403)
