"""Real traffic: requests through the real gateway (uvicorn + upstream simulator), the ledger
writer, then the efficiency grades computed from that ledger."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

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
