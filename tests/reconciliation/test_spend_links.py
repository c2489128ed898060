"""The FOCUS export from the spend overview, reconciliation alerts as a first-class kind on the
alerts page, and the provider key links API."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from django.test import Client

from billing.models import Alert
from billing.services.alerts import alert_record
from gateway.services.keys import provider_key_create
from reconciliation.models import ProviderKeyLink
from tests.factories import UsageRecordFactory
from tests.reconciliation.test_api import call
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db


def _client(member) -> Client:
    client = Client()
    client.force_login(member.user)
    return client


def test_overview_links_the_focus_export_of_its_period(cast):
    with workspace_scope(cast.workspace.pk):
        UsageRecordFactory(
            workspace=cast.workspace,
            member=cast.member,
            cost_usd=Decimal("0.25"),
            created_at=dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC),
        )
    finance = _client(cast.finance)
    page = finance.get("/?period=month&date=2026-11-10").content.decode()
    [href] = re.findall(r'href="(/api/v1/exports/focus/[^"]+)"', page)
    href = href.replace("&amp;", "&")
    assert "since=2026-11-01" in href and "until=2026-11-30" in href
    export = finance.get(href)  # the page's session is enough: no API token needed
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert sum(Decimal(r["BilledCost"]) for r in rows) == Decimal("0.25")


def test_reconciliation_alerts_have_a_label_and_a_filter(cast):
    with workspace_scope(cast.workspace.pk):
        alert_record(
            workspace_id=cast.workspace.pk,
            kind="reconciliation",
            dedupe_key="recon:openai:2026-11-10:capture",
            title="OpenAI capture 90% on 2026-11-10",
        )
        alert = Alert.objects.get(kind="reconciliation")
    assert alert.get_kind_display() == "Provider bill mismatch"
    page = _client(cast.owner).get("/alerts/?kind=reconciliation&state=all").content.decode()
    assert '<option value="reconciliation" selected>Provider bill mismatch</option>' in page
    assert "OpenAI capture 90% on 2026-11-10" in page


def test_key_links_api_roles_and_cross_tenant(cast):
    with workspace_scope(cast.workspace.pk):
        oai = provider_key_create(
            workspace=cast.workspace, provider="openai", name="oai", secret="sk-test-links-0001"
        )
    url = f"/api/v1/reconciliation/key-links/{oai.pk}/"
    assert call(cast.finance, "put", url, {"provider_key_id": "key_a"}).status_code == 403
    assert call(cast.outsider, "put", url, {"provider_key_id": "key_a"}).status_code == 404
    with workspace_scope(cast.workspace.pk):
        assert not ProviderKeyLink.objects.exists()
    done = call(cast.admin, "put", url, {"provider_key_id": "key_a"})
    assert done.status_code == 200 and done.json()["provider_key_id"] == "key_a"
    listed = call(cast.finance, "get", "/api/v1/reconciliation/key-links/").json()
    assert [(k["id"], k["provider_key_id"]) for k in listed] == [(oai.pk, "key_a")]
    assert call(cast.outsider, "get", "/api/v1/reconciliation/key-links/").json() == []
    assert call(cast.member, "get", "/api/v1/reconciliation/key-links/").status_code == 403
