"""Real traffic: requests through the real gateway (uvicorn + upstream simulator), the ledger
writer, then the efficiency grades computed from that ledger."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.db.models import F
from django.test import Client

from billing.models import UsageRecord
from efficiency import selectors
from efficiency.models import EfficiencyGrade, EfficiencySignal
from efficiency.services import efficiency_compute
from tests.cast import build_cast
from tests.gateway.conftest import GW, add_provider_keys, issue_key
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def gw(transactional_db, gateway_stack, redis_client):
    cast = build_cast()
    add_provider_keys(cast, gateway_stack.sim_url)
    with workspace_scope(cast.workspace.pk):
        # Before the key: the key snapshot lists the agents its member may name.
        agent_create(workspace=cast.workspace, slug="looper", name="Looper", owner=cast.member)
    key_obj, raw = issue_key(cast)
    gateway_stack.sim_reset()
    return GW(cast, gateway_stack, raw, key_obj, gateway_stack.gw_url + "/v1")


def chat(gw, content, *, model="gpt-4o-mini", **headers):
    response = httpx.post(
        gw.base + "/chat/completions",
        headers={"authorization": f"Bearer {gw.key}", **headers},
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response


def test_real_traffic_looping_agent_and_frontier_model_on_one_liners(gw):
    loop_ids = [
        chat(
            gw,
            "fix the failing test",
            **{"Alephant-Agent": "looper", "Alephant-Session-Id": "run-1"},
        ).headers["alephant-request-id"]
        for _ in range(12)
    ]
    for i in range(8):
        chat(gw, f"one-line question {i}?", model="gpt-4o")
    for i in range(6):
        chat(
            gw,
            f"a varied and reasonable request number {i}",
            **{"Alephant-Agent": "looper", "Alephant-Session-Id": f"ok-{i}"},
        )
    assert len(gw.ledger()) == 26  # drains the usage stream into the ledger

    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        efficiency_compute(workspace=ws)
        agent = EfficiencyGrade.objects.get(entity_kind="agent")
        assert (agent.grade, agent.verdict, agent.capped_by) == ("D", "wasteful", "thrashing")
        loop = EfficiencySignal.objects.get(kind="thrashing")
        assert loop.evidence["request_ids"] == loop_ids and loop.evidence["repeats"] == 12

        overkill = EfficiencySignal.objects.get(kind="model_overkill")
        assert overkill.evidence["model"] == "gpt-4o" and overkill.evidence["request_count"] == 8
        assert overkill.evidence["suggested_model"] == "gpt-4o-mini"
        assert Decimal(overkill.evidence["savings_usd"]) > 0
        assert overkill.member_id == gw.cast.member.pk and overkill.agent_id is None


def test_real_traffic_cached_workload_stops_raising_cache_miss(gw):
    on = {"Alephant-Cache": "on", "Alephant-Agent": "looper"}
    first = chat(gw, "summarise the daily report", **on)
    assert first.headers["alephant-cache"] == "miss"
    hits = [chat(gw, "summarise the daily report", **on) for _ in range(3)]
    assert [h.headers["alephant-cache"] for h in hits] == ["hit", "hit", "hit"]
    assert all(h.content == first.content for h in hits)
    assert hits[0].headers["alephant-saved-usd"] == first.headers["alephant-cost-usd"]
    assert Decimal(hits[0].headers["alephant-cost-usd"]) == 0
    assert gw.stack.sim_stats()["total"] == 1  # the provider was called once
    # Without the header (and no policy) nothing is cached: the provider is called again.
    plain = chat(gw, "summarise the daily report", **{"Alephant-Agent": "looper"})
    assert "alephant-cache" not in plain.headers and gw.stack.sim_stats()["total"] == 2

    rows = gw.ledger()
    [paid] = gw.ledger(request_id=first.headers["alephant-request-id"])
    hit_rows = [r for r in rows if r.cache_hit]
    assert len(rows) == 5 and len(hit_rows) == 3 and paid.cost_usd > 0
    assert all(r.cost_usd == 0 and r.saved_usd == paid.cost_usd for r in hit_rows)
    assert {r.request_id for r in hit_rows} == {h.headers["alephant-request-id"] for h in hits}

    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        report = efficiency_compute(workspace=ws)
        assert report.saved_usd == 3 * paid.cost_usd
        # Only the one un-cached repeat is a miss; the three hits are not.
        miss = EfficiencySignal.objects.get(kind="cache_miss")
        assert miss.evidence["request_ids"] == [plain.headers["alephant-request-id"]]
        assert Decimal(miss.evidence["dollars_lost"]) == paid.cost_usd


def test_real_traffic_workload_without_cache_raises_cache_miss(gw):
    replies = [chat(gw, "what changed in the release?") for _ in range(4)]
    assert gw.stack.sim_stats()["total"] == 4
    rows = gw.ledger()
    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        efficiency_compute(workspace=ws)
        miss = EfficiencySignal.objects.get(kind="cache_miss")
        assert miss.evidence["request_ids"] == [
            r.headers["alephant-request-id"] for r in replies[1:]
        ]
        lost = sum((r.cost_usd for r in rows[1:]), Decimal(0))
        assert Decimal(miss.evidence["dollars_lost"]) == lost


def test_real_traffic_cache_switched_on_improves_the_next_periods_grade(gw):
    loop = {"Alephant-Agent": "looper", "Alephant-Session-Id": "run-1"}
    for _ in range(8):
        assert "alephant-cache" not in chat(gw, "fix the failing test", **loop).headers
    last_week = gw.ledger()
    assert len(last_week) == 8 and all(r.cost_usd > 0 for r in last_week)
    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        # That loop ran last week: move its ledger rows back seven days.
        UsageRecord.objects.filter(workspace=ws).update(
            created_at=F("created_at") - timedelta(days=7)
        )

    # This week the cache is on for the looper: one miss fills it, the repeats are free.
    on = {**loop, "Alephant-Cache": "on"}
    assert chat(gw, "fix the failing test", **on).headers["alephant-cache"] == "miss"
    assert [chat(gw, "fix the failing test", **on).headers["alephant-cache"] for _ in range(7)] == [
        "hit"
    ] * 7
    assert len(gw.ledger()) == 16 and gw.stack.sim_stats()["total"] == 9

    with workspace_scope(ws.pk):
        now = efficiency_compute(workspace=ws)
        before = efficiency_compute(workspace=ws, at=now.period_start - timedelta(microseconds=1))
        agent_id = last_week[0].agent_id
        old = EfficiencyGrade.objects.get(report=before, entity_kind="agent", agent_id=agent_id)
        new = EfficiencyGrade.objects.get(report=now, entity_kind="agent", agent_id=agent_id)
        repeats = sum((r.cost_usd for r in last_week[1:]), Decimal(0))
        assert (old.grade, old.capped_by, old.waste_usd) == ("D", "thrashing", repeats)
        assert (new.grade, new.verdict, new.capped_by, new.waste_usd) == ("S", "justified", "", 0)
        assert not EfficiencySignal.objects.filter(report=now).exists()
        trend = selectors.report_trends(workspace=ws, report=now, previous=before)[
            ("agent", agent_id)
        ]
        assert trend.direction == "better" and trend.waste_change_usd == -repeats
        assert "cache hits rose from 0 to 7" in trend.causes

    page = Client()
    page.force_login(gw.cast.finance.user)
    html = page.get("/efficiency/").content.decode()
    assert "cache hits rose from 0 to 7" in html and 'data-trend="better"' in html
