"""Spend pages: role matrix, cross-tenant 404, totals equal to the ledger, CSV export."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from django.db.models import Sum

from billing.models import UsageRecord
from workspaces.tenancy import workspace_scope

ROLES = ("owner", "admin", "finance", "member")


def _client(client, member):
    client.force_login(member.user)
    return client


def _pages(w) -> dict[str, str]:
    c = w.cast
    return {
        "overview": "/",
        "members": "/spend/members/",
        "agents": "/spend/agents/",
        "departments": "/spend/departments/",
        "keys": "/spend/keys/",
        "models": "/spend/models/",
        "providers": "/spend/providers/",
        "properties": "/spend/properties/",
        "sessions": "/spend/sessions/",
        "alerts": "/alerts/",
        "budgets": "/budgets/",
        "own-member": f"/spend/members/{c.member.pk}/",
        "other-member": f"/spend/members/{c.admin.pk}/",
        "agent": f"/spend/agents/{w.agent.pk}/",
        "department": f"/spend/departments/{c.member.department_id}/",
        "own-key": f"/spend/keys/{w.key.pk}/",
        "model": "/spend/models/openai/gpt-4o/",
        "provider": "/spend/providers/openai/",
        "session": "/spend/sessions/run-a/",
    }


MEMBER_ALLOWED = {"own-member": 200, "own-key": 200, "overview": 302}


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client, world, role):
    _client(client, world.cast.by_role(role))
    for name, url in _pages(world).items():
        response = client.get(url)
        if role == "member":
            expected = MEMBER_ALLOWED.get(name, 403)
        else:
            expected = 200
        assert response.status_code == expected, (role, name, url, response.status_code)
    if role == "member":
        assert client.get("/").url == f"/spend/members/{world.cast.member.pk}/"


def test_anonymous_is_sent_to_log_in(client, world):
    for url in _pages(world).values():
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response.url, url


def test_foreign_objects_are_404_and_foreign_data_never_shows(client, world):
    c = world.cast
    _client(client, c.outsider)
    foreign = [
        f"/spend/members/{c.member.pk}/",
        f"/spend/members/{c.owner.pk}/",
        f"/spend/agents/{world.agent.pk}/",
        f"/spend/departments/{c.member.department_id}/",
        f"/spend/keys/{world.key.pk}/",
    ]
    for url in foreign:
        assert client.get(url).status_code == 404, url
    # Pages keyed by name show the outsider's own (empty) data, never workspace A's.
    for url in (
        "/",
        "/spend/models/openai/gpt-4o/",
        "/spend/sessions/run-a/",
        "/spend/sessions/",
        "/spend/members/",
    ):
        body = client.get(url).content.decode()
        assert "member@a.example" not in body and "$1.25" not in body, url
    # And A's people never see B's.
    _client(client, c.owner)
    for url in (
        f"/spend/members/{c.outsider.pk}/",
        f"/spend/agents/{world.outsider_agent.pk}/",
        f"/spend/keys/{world.outsider_key.pk}/",
    ):
        assert client.get(url).status_code == 404, url
    body = client.get("/spend/models/").content.decode()
    assert "secret-model" not in body and "$99" not in body


def test_member_cannot_see_another_members_key(client, world):
    from gateway.services.keys import gateway_key_create

    c = world.cast
    with workspace_scope(c.workspace.pk):
        admin_key, _ = gateway_key_create(workspace=c.workspace, name="admin", member=c.admin)
    _client(client, c.member)
    assert client.get(f"/spend/keys/{admin_key.pk}/").status_code == 403


def _total(html: str) -> Decimal:
    return Decimal(re.search(r'data-total-spend="([^"]+)"', html).group(1))


def test_overview_and_drilldowns_equal_the_ledger(client, world):
    c = world.cast
    with workspace_scope(c.workspace.pk):
        ledger = UsageRecord.objects.aggregate(s=Sum("cost_usd"))["s"]
        by_member = dict(
            UsageRecord.objects.values_list("member_id").annotate(s=Sum("cost_usd")).order_by()
        )
    assert ledger == Decimal("3.750000000001")
    _client(client, c.finance)
    assert _total(client.get("/").content.decode()) == ledger
    for member_id, spent in by_member.items():
        html = client.get(f"/spend/members/{member_id}/").content.decode()
        assert _total(html) == spent
    html = client.get(f"/spend/departments/{c.member.department_id}/").content.decode()
    assert _total(html) == Decimal("1.75")
    html = client.get(f"/spend/agents/{world.agent.pk}/").content.decode()
    assert _total(html) == Decimal("0.50")
    assert "$3.75" in client.get("/").content.decode()


def test_csv_export_of_a_table(client, world):
    _client(client, world.cast.finance)
    response = client.get("/?export=top-members")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    spent = {r["member"]: Decimal(r["cost_usd"]) for r in rows}
    assert spent == {
        "member@a.example": Decimal("1.75"),
        "admin@a.example": Decimal("2.000000000001"),
    }
    recent = client.get(f"/spend/members/{world.cast.member.pk}/?export=recent-requests")
    body = b"".join(recent.streaming_content).decode()
    assert len(list(csv.reader(io.StringIO(body)))) == 3  # header + 2
    assert client.get("/?export=nope").status_code == 404


def test_member_csv_of_own_page_only(client, world):
    c = world.cast
    _client(client, c.member)
    assert client.get(f"/spend/members/{c.member.pk}/?export=by-model").status_code == 200
    assert client.get(f"/spend/members/{c.admin.pk}/?export=by-model").status_code == 403
    assert client.get("/spend/members/?export=members").status_code == 403


def test_periods_and_sessions(client, world):
    _client(client, world.cast.owner)
    for q in (
        "period=day",
        "period=week",
        "period=month&date=2020-01-01",
        "period=custom&start=2020-01-01&end=2020-01-31",
        "period=custom&start=bad",
        "period=nonsense",
    ):
        assert client.get(f"/?{q}").status_code == 200, q
    old = client.get("/?period=month&date=2020-01-01").content.decode()
    assert _total(old) == 0
    body = client.get("/spend/sessions/").content.decode()
    assert 'data-session="run-a"' in body
    assert client.get("/spend/sessions/?sort=steps").status_code == 200
