"""Issue 15 charts: error rate + latency, cache hit rate + savings, trend lines per member,
agent and department. Every figure drawn is compared with a sum of ledger rows."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db.models import Count, Q, Sum
from django.utils import timezone

from attribution.services.rollups import rollup_workspace
from billing.models import UsageRecord
from tests.attribution.factories import usage
from workspaces.tenancy import workspace_scope


def _traffic(c):
    now = timezone.now()
    m = c.member
    with workspace_scope(c.workspace.pk):
        usage(
            c.workspace,
            at=now - dt.timedelta(minutes=5),
            cost="0",
            member=m,
            department=m.department,
            status_code=502,
            error_type="upstream_error",
            latency_ms=900,
        )
        usage(
            c.workspace,
            at=now - dt.timedelta(minutes=6),
            cost="0",
            member=m,
            department=m.department,
            status_code=402,
            error_type="budget_exceeded",
        )
        for i in range(3):
            usage(
                c.workspace,
                at=now - dt.timedelta(minutes=7 + i),
                cost="0",
                member=m,
                department=m.department,
                cache_hit=True,
                saved_usd=Decimal("0.125"),
                latency_ms=20,
            )
        rollup_workspace(workspace=c.workspace)


def _ledger(ws, **filters):
    with workspace_scope(ws.pk):
        return UsageRecord.objects.filter(workspace=ws, **filters).aggregate(
            n=Count("id"),
            errors=Count("id", filter=Q(status_code__gte=400) | ~Q(error_type="")),
            hits=Count("id", filter=Q(cache_hit=True)),
            saved=Sum("saved_usd"),
            cost=Sum("cost_usd"),
        )


def _attr_sum(body: str, section: str, attr: str, kind=int):
    part = body.split(f'data-chart="{section}"', 1)[1].split("</section>", 1)[0]
    return sum((kind(v) for v in re.findall(rf'{attr}="([^"]*)"', part)), kind(0))


@pytest.mark.parametrize("role", ["finance", "admin", "member"])
def test_member_drilldown_health_and_cache_charts_trace_to_the_ledger(client, world, role):
    c = world.cast
    _traffic(c)
    client.force_login(c.by_role(role).user)
    body = client.get(f"/spend/members/{c.member.pk}/").content.decode()
    want = _ledger(c.workspace, member=c.member)
    assert _attr_sum(body, "health", "data-requests") == want["n"]
    assert _attr_sum(body, "health", "data-errors") == want["errors"] == 2
    assert _attr_sum(body, "cache", "data-hits") == want["hits"] == 3
    assert _attr_sum(body, "cache", "data-saved", Decimal) == want["saved"] == Decimal("0.375")
    assert "Error rate and latency over time" in body and "<desc>" in body
    assert 'tabindex="0"' in body and "mean latency" in body


def test_overview_charts_hold_the_workspace_only(client, world):
    c = world.cast
    _traffic(c)
    client.force_login(c.finance.user)
    body = client.get("/").content.decode()
    want = _ledger(c.workspace)
    assert _attr_sum(body, "health", "data-requests") == want["n"]
    assert _attr_sum(body, "cache", "data-saved", Decimal) == want["saved"]


@pytest.mark.parametrize(
    "segment,field",
    [
        ("members", "member_id"),
        ("agents", "agent_id"),
        ("departments", "department_id"),
    ],
)
def test_trend_lines_per_entity_equal_ledger_sums(client, world, segment, field):
    c = world.cast
    _traffic(c)
    client.force_login(c.finance.user)
    body = client.get(f"/spend/{segment}/").content.decode()
    assert 'data-chart="trend"' in body and "Spend trend per" in body
    lines = dict(re.findall(r'data-trend="([^"]*)" data-total="([^"]*)"', body))
    assert lines, body[:500]
    for key, total in lines.items():
        filt = {f"{field}__isnull": True} if key == "" else {field: int(key)}
        assert Decimal(total) == _ledger(c.workspace, **filt)["cost"], key
    assert "99" not in lines.values()  # workspace B's $99 is nowhere


def test_trends_are_for_readers_and_drilldowns_404_across_tenants(client, world):
    c = world.cast
    client.force_login(c.member.user)
    assert client.get("/spend/members/").status_code == 403
    client.force_login(c.outsider.user)
    assert client.get(f"/spend/members/{c.member.pk}/").status_code == 404
    assert client.get(f"/spend/agents/{world.agent.pk}/").status_code == 404


@pytest.mark.parametrize("dimension", ["member", "agent", "department"])
def test_drilldown_trend_against_previous_period_equals_ledger_sums(client, world, dimension):
    c = world.cast
    now = timezone.now()
    last_month = (now.date().replace(day=1) - dt.timedelta(days=1)).replace(day=5)
    m = c.member
    with workspace_scope(c.workspace.pk):
        usage(
            c.workspace,
            at=dt.datetime.combine(last_month, dt.time(9), tzinfo=dt.UTC),
            cost="3.5",
            member=m,
            department=m.department,
            agent=world.agent,
        )
        rollup_workspace(workspace=c.workspace)
    entity = {"member": m, "agent": world.agent, "department": m.department}[dimension]
    client.force_login(c.finance.user)
    body = client.get(f"/spend/{dimension}s/{entity.pk}/").content.decode()
    got = dict(re.findall(r'data-cumulative="(\w+)" data-total="([^"]*)"', body))
    field = f"{dimension}_id"
    start = dt.datetime.combine(now.date().replace(day=1), dt.time(), tzinfo=dt.UTC)
    this = _ledger(c.workspace, **{field: entity.pk, "created_at__gte": start})["cost"]
    before = _ledger(c.workspace, **{field: entity.pk, "created_at__lt": start})["cost"]
    assert Decimal(got["current"]) == this and Decimal(got["previous"]) == before
    assert before == Decimal("3.5") and "Cumulative spend against the previous period" in body
