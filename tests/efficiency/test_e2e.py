"""Real traffic: requests through the real gateway (uvicorn + upstream simulator), the ledger
writer, then the efficiency grades computed from that ledger."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest

from efficiency.models import EfficiencyGrade, EfficiencySignal
from efficiency.services import efficiency_compute
from tests.cast import build_cast
from tests.gateway.conftest import GW, add_provider_keys, gateway_stack, issue_key  # noqa: F401
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def gw(transactional_db, gateway_stack, redis_client, settings):  # noqa: F811
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
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
    loop_ids = [chat(gw, "fix the failing test", **{"Alephant-Agent": "looper",
                                                    "Alephant-Session-Id": "run-1"})
                .headers["alephant-request-id"] for _ in range(12)]
    for i in range(8):
        chat(gw, f"one-line question {i}?", model="gpt-4o")
    for i in range(6):
        chat(gw, f"a varied and reasonable request number {i}",
             **{"Alephant-Agent": "looper", "Alephant-Session-Id": f"ok-{i}"})
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
