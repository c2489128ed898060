"""API, page and FOCUS export: roles, cross-tenant 404 with nothing changed, the admin key
never readable back, and the FOCUS file read back against the ledger to the Decimal."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from django.test import Client

from billing.models import UsageRecord
from reconciliation.focus import COLUMNS, MANDATORY
from reconciliation.models import AdminCredential
from reconciliation.services.credentials import admin_credential_set
from tests.cast import build_cast
from tests.factories import UsageRecordFactory
from workspaces.models import AuditLog
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db
SECRET = "sk-admin-PLAINTEXT-never-shown-9f8e7d"
DAY = dt.date(2026, 11, 3)


@pytest.fixture
def cast():
    return build_cast()


def _token(member) -> str:
    with workspace_scope(member.workspace_id):
        return api_token_create(member=member, name="t")[1]


def call(member, method: str, path: str, data=None):
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {_token(member)}"}
    if data is not None:
        kwargs.update(data=json.dumps(data), content_type="application/json")
    return getattr(Client(), method)(path, **kwargs)


def test_admin_key_goes_in_and_never_comes_out(cast):
    created = call(cast.admin, "post", "/api/v1/reconciliation/admin-keys/",
                   {"provider": "openai", "secret": SECRET})  # fmt: skip
    assert created.status_code == 201, created.content
    listed = call(cast.finance, "get", "/api/v1/reconciliation/admin-keys/")
    assert listed.status_code == 403  # finance reads the figures, not the keys
    listed = call(cast.owner, "get", "/api/v1/reconciliation/admin-keys/")
    assert listed.json()["results"][0]["last4"] == SECRET[-4:]
    with workspace_scope(cast.workspace.pk):
        stored = AdminCredential.objects.get(workspace=cast.workspace)
        audit = list(AuditLog.objects.filter(workspace=cast.workspace).values("before", "after"))
    for text in (created.content, listed.content, stored.ciphertext, json.dumps(audit)):
        assert "PLAINTEXT" not in (text.decode() if isinstance(text, bytes) else text)
    refused = call(cast.admin, "post", "/api/v1/reconciliation/admin-keys/",
                   {"provider": "openai", "secret": "sk-proj-a-call-key"})  # fmt: skip
    assert refused.status_code == 400 and "admin key" in refused.content.decode()


def test_cross_tenant_is_404_and_nothing_changes(cast):
    call(cast.admin, "post", "/api/v1/reconciliation/admin-keys/",
         {"provider": "anthropic", "secret": "sk-ant-admin-" + "x" * 20})  # fmt: skip
    with workspace_scope(cast.workspace.pk):
        key = AdminCredential.objects.get(workspace=cast.workspace)
        before = (key.ciphertext, key.last4)
        UsageRecordFactory(workspace=cast.workspace, created_at=dt.datetime.now(dt.UTC))
    gone = call(cast.outsider, "delete", f"/api/v1/reconciliation/admin-keys/{key.pk}/")
    assert gone.status_code == 404
    with workspace_scope(cast.workspace.pk):
        key.refresh_from_db()
        assert (key.ciphertext, key.last4) == before
    # The outsider's reconciliation and export are their own workspace's: empty.
    body = call(cast.outsider, "get", "/api/v1/reconciliation/").json()
    assert body["results"] == [] and body["total"]["ledger_cost_usd"] == "0.00"
    export = call(cast.outsider, "get", "/api/v1/exports/focus/").content.decode()
    assert export.strip() == ",".join(COLUMNS)
    assert call(cast.member, "get", "/api/v1/reconciliation/").status_code == 403
    assert call(cast.member, "get", "/api/v1/exports/focus/").status_code == 403


def test_bad_window_is_400(cast):
    bad = call(cast.finance, "get", "/api/v1/reconciliation/?since=2026-02-01&until=2026-01-01")
    assert bad.status_code == 400
    assert call(cast.finance, "get", "/api/v1/exports/focus/?since=nope").status_code == 400


def _ledger(cast):
    ws = cast.workspace
    with workspace_scope(ws.pk):
        agent = agent_create(workspace=ws, slug="bot", name="Bot", owner=cast.member)
        at = dt.datetime.combine(DAY, dt.time(9), tzinfo=dt.UTC)
        rows = [
            dict(member=cast.member, department=cast.member.department, cost_usd=Decimal("0.000123456789")),
            dict(member=cast.member, department=cast.member.department, cost_usd=Decimal("1.5")),
            dict(member=cast.member, agent=agent, session_id="s-1", cost_usd=Decimal("0.333333333333")),
            dict(member=cast.admin, properties={"team": "=cmd", "env": "prod"},
                 cost_usd=Decimal("0.02"), provider="anthropic", model="claude-3-5-haiku-latest"),
            dict(member=cast.member, cache_hit=True, cost_usd=Decimal(0), saved_usd=Decimal("0.0042")),
            dict(member=cast.member, cost_usd=Decimal("9"), created_at=at + dt.timedelta(days=40)),
        ]  # fmt: skip
        for row in rows:
            UsageRecordFactory(workspace=ws, created_at=row.pop("created_at", at), **row)
    return agent


def test_focus_export_reads_back_to_the_ledger(cast):
    agent = _ledger(cast)
    response = call(cast.finance, "get", "/api/v1/exports/focus/?period=month&date=2026-11-15")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert set(MANDATORY) <= set(rows[0]) and list(rows[0]) == COLUMNS
    for row in rows:
        # FOCUS 1.2: ChargeClass is null unless the row corrects an earlier one; PricingQuantity
        # and PricingUnit may be null on a Credit row (they must not on Usage).
        nullable = {"ChargeClass"} | (
            {"PricingQuantity", "PricingUnit"} if row["ChargeCategory"] == "Credit" else set()
        )
        for column in MANDATORY:
            if column not in nullable:
                assert row[column] != "", column
        assert row["ChargeClass"] == "" and row["BillingCurrency"] == "USD"
        assert row["ChargeCategory"] in {"Usage", "Credit"}
        assert row["BillingPeriodStart"] == "2026-11-01T00:00:00Z"
        assert row["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
        assert row["ChargePeriodStart"] == "2026-11-03T00:00:00Z"
        assert row["ServiceCategory"] == "AI and Machine Learning"
        Decimal(row["BilledCost"])  # a plain decimal, no exponent, no currency sign
        assert "E" not in row["BilledCost"]
    with workspace_scope(cast.workspace.pk):
        start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        month = UsageRecord.objects.filter(
            workspace=cast.workspace, created_at__gte=start, created_at__lt=dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
        )  # fmt: skip
        ledger_total = sum(r.cost_usd for r in month)
        assert (
            sum(Decimal(r["BilledCost"]) for r in rows) == ledger_total == Decimal("1.853456790122")
        )
        # Every usage row's tags and ids trace to ledger rows with the same cost.
        for row in rows:
            if row["ChargeCategory"] != "Usage":
                continue
            tags = json.loads(row["Tags"])
            match = month.filter(
                provider=row["x_Provider"], model=row["x_Model"],
                member_id=int(row["x_MemberId"]), session_id=row["x_SessionId"],
                agent_id=int(row["x_AgentId"]) if row["x_AgentId"] else None,
                department_id=int(row["x_DepartmentId"]) if row["x_DepartmentId"] else None,
            )  # fmt: skip
            assert sum(r.cost_usd for r in match) == Decimal(row["BilledCost"])
            assert tags["alephant/member"] == match[0].member.user.email
            if row["x_AgentId"]:
                assert tags["alephant/agent"] == agent.name
    by_cat = [r for r in rows if r["ChargeCategory"] == "Credit"]
    assert [r["x_CacheSavedCost"] for r in by_cat] == ["0.0042"]
    assert by_cat[0]["BilledCost"] == "0.00" and by_cat[0]["ConsumedQuantity"] == ""
    props = next(json.loads(r["Tags"]) for r in rows if r["x_Provider"] == "anthropic")
    assert props["alephant/property/team"] == "=cmd" and props["alephant/property/env"] == "prod"


def test_pages(cast):
    _ledger(cast)
    with workspace_scope(cast.workspace.pk):  # only providers with an admin key are compared
        admin_credential_set(workspace=cast.workspace, provider="openai", secret=SECRET)
    client = Client()
    client.force_login(cast.finance.user)
    page = client.get("/reconciliation/?month=2026-11")
    assert page.status_code == 200 and b"Reconciliation" in page.content
    assert client.get("/reconciliation/?month=2026-11&export=models").status_code == 200
    drill = client.get("/reconciliation/day/?day=2026-11-03&provider=openai&model=gpt-4o-mini")
    assert drill.status_code == 200 and b"The requests behind it" in drill.content
    assert b"req-" in drill.content  # the ledger rows behind the figure
    assert b"day=2026-11-03&amp;provider=openai&amp;model=gpt-4o-mini" in page.content
    assert client.get("/reconciliation/day/?day=nope&provider=openai").status_code == 404
    member = Client()
    member.force_login(cast.member.user)
    assert member.get("/reconciliation/").status_code == 403


def test_policy_defaults_roles_and_tenancy(cast):
    url = "/api/v1/reconciliation/policy/"
    assert call(cast.finance, "get", url).json() == {
        "capture_threshold_pct": "98.00", "drift_limit_usd": "1.000000", "lookback_days": 7,
    }  # fmt: skip
    new = {"capture_threshold_pct": "95.5", "drift_limit_usd": "0.25", "lookback_days": 14}
    assert call(cast.finance, "post", url, new).status_code == 403
    assert call(cast.admin, "post", url, {**new, "lookback_days": 90}).status_code == 400
    assert call(cast.admin, "post", url, new).json()["capture_threshold_pct"] == "95.50"
    assert call(cast.owner, "get", url).json()["lookback_days"] == 14
    assert call(cast.outsider, "get", url).json()["capture_threshold_pct"] == "98.00"
    page = Client()
    page.force_login(cast.owner.user)
    page.post("/reconciliation/policy/", {"capture_threshold_pct": "90", "drift_limit_usd": "2",
                                          "lookback_days": "3"})  # fmt: skip
    assert call(cast.finance, "get", url).json()["lookback_days"] == 3


def test_data_key_rotation_reseals_admin_keys(cast):
    from gateway.services.datakey_rotation import datakey_rotate
    from reconciliation.services.credentials import admin_credential_reveal

    ws = cast.workspace
    with workspace_scope(ws.pk):
        admin_credential_set(workspace=ws, provider="openai", secret=SECRET)
        before = AdminCredential.objects.get(workspace=ws)
        new_key = datakey_rotate(workspace=ws)  # would fail on a key the admin key still uses
        after = AdminCredential.objects.get(workspace=ws)
        assert after.data_key_id == new_key.pk != before.data_key_id
        assert after.ciphertext != before.ciphertext
        assert admin_credential_reveal(credential=after) == SECRET
