"""End to end through TWO real gateway processes (uvicorn) and the upstream simulator: 64
concurrent calls race for a budget that fits 10; the rate cap holds across both processes."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest

from core.money import NANOS_PER_USD
from core.periods import period_bounds
from tests.gateway.servers import snapshots_expire

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(gateway_pair):
    """The session's two gateway processes (tests/conftest.py) and its simulator."""
    return gateway_pair.sim_url, gateway_pair.gw_urls


@pytest.fixture
def world(transactional_db, stack, redis_client):
    from billing.models import PriceOverride
    from gateway.snapshots import publish_workspace
    from tests.cast import build_cast
    from tests.gateway.conftest import add_provider_keys
    from workspaces.tenancy import workspace_scope

    sim_url, gateways = stack
    cast = build_cast("e2e-")
    add_provider_keys(cast, sim_url)
    with workspace_scope(cast.workspace.pk):
        # Output-only price: a call's worst case is exactly max_tokens x $0.001 = $0.10.
        PriceOverride.objects.create(
            workspace=cast.workspace,
            provider="openai",
            model="gpt-4o",
            input_per_mtok=Decimal(0),
            output_per_mtok=Decimal(1000),
        )
    publish_workspace(cast.workspace.pk)
    httpx.post(sim_url + "/_sim/reset")
    return cast, sim_url, gateways


def _issue(cast, **kwargs):
    from gateway.services.keys import gateway_key_create
    from workspaces.tenancy import workspace_scope

    with workspace_scope(cast.workspace.pk):
        return gateway_key_create(
            workspace=cast.workspace, name=kwargs.pop("name", "k"), member=cast.member, **kwargs
        )[1]


async def _fire(gateways, key, n, max_tokens=100, latency_ms=1000):
    async with httpx.AsyncClient(timeout=30) as client:

        async def one(i):
            return await client.post(
                f"{gateways[i % 2]}/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                # The provider answers with max_tokens tokens (actual cost == worst case), slowly,
                # so all 64 calls are in flight together.
                json={
                    "model": "gpt-4o",
                    "max_tokens": max_tokens,
                    "messages": [
                        {
                            "role": "user",
                            "content": f"hello {i} [[sim:tokens={max_tokens}]] [[sim:latency={latency_ms}]]",
                        }
                    ],
                },
            )

        return await asyncio.gather(*(one(i) for i in range(n)))


def test_zero_overshoot_through_two_gateway_processes(world, redis_client):
    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    cast, sim_url, gateways = world
    with workspace_scope(cast.workspace.pk):
        budget = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="1.00",
            period="month",
            throttle_at=None,
        )
    key = _issue(cast)
    snapshots_expire()  # the gateways re-read the workspace snapshot

    responses = asyncio.run(_fire(gateways, key, 64))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 10, codes
    assert codes.count(402) == 54, codes
    refused = next(r for r in responses if r.status_code == 402)
    error = refused.json()["error"]
    assert error["type"] == "budget_exceeded" and f"budget {budget.pk}" in error["message"]
    assert refused.headers["alephant-budget-remaining-usd"] == "0.00"
    assert {r.headers["alephant-cost-usd"] for r in responses if r.status_code == 200} == {"0.10"}
    # Every refused call was refused before the provider saw it.
    assert httpx.get(sim_url + "/_sim/stats").json()["total"] == 10
    period = period_bounds("month", cast.workspace.time_zone, time.time())[0]
    counter = redis_client.hgetall(f"alephant:{{w{cast.workspace.pk}}}:b:{budget.pk}:{period}")
    assert int(counter[b"spent"]) == NANOS_PER_USD  # exactly the cap, never past it
    assert int(counter[b"reserved"]) == 0


def test_rate_cap_holds_across_two_gateway_processes(world):
    cast, sim_url, gateways = world
    key = _issue(cast, name="rpm", rpm=12)
    responses = asyncio.run(_fire(gateways, key, 30, max_tokens=5, latency_ms=0))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 12 and codes.count(429) == 18, codes
    limited = next(r for r in responses if r.status_code == 429)
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert httpx.get(sim_url + "/_sim/stats").json()["total"] == 12


def _counter(redis_client, cast, budget):
    period = period_bounds("month", cast.workspace.time_zone, time.time())[0]
    raw = redis_client.hgetall(f"alephant:{{w{cast.workspace.pk}}}:b:{budget.pk}:{period}")
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_reservation_released_on_upstream_error_and_client_disconnect(world, redis_client):
    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    cast, _sim_url, gateways = world
    with workspace_scope(cast.workspace.pk):
        budget = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="1.00",
            period="month",
            throttle_at=None,
        )
    key = _issue(cast, name="rel")
    snapshots_expire()
    headers = {"Authorization": f"Bearer {key}"}

    def chat(content, timeout=30.0):
        return httpx.post(
            f"{gateways[0]}/v1/chat/completions",
            headers=headers,
            timeout=timeout,
            json={
                "model": "gpt-4o",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": content}],
            },
        )

    failed = chat("boom [[sim:fail=500]]")
    assert failed.status_code >= 500
    state = _counter(redis_client, cast, budget)
    assert int(state["reserved"]) == 0 and int(state["spent"]) == 0

    with pytest.raises(httpx.ReadTimeout):
        chat("slow [[sim:latency=1500]]", timeout=0.5)  # the client hangs up mid-call
    deadline = time.time() + 10
    while time.time() < deadline and int(_counter(redis_client, cast, budget)["reserved"]):
        time.sleep(0.2)
    state = _counter(redis_client, cast, budget)
    assert int(state["reserved"]) == 0
    assert int(state["spent"]) <= NANOS_PER_USD // 10


def test_streaming_call_settles_from_reported_usage(world, redis_client):
    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    cast, _sim_url, gateways = world
    with workspace_scope(cast.workspace.pk):
        budget = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="1.00",
            period="month",
            throttle_at=None,
        )
    key = _issue(cast, name="stream")
    snapshots_expire()
    with httpx.stream(
        "POST",
        f"{gateways[1]}/v1/chat/completions",
        timeout=30,
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "gpt-4o",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "tell me [[sim:tokens=50]]"}],
        },
    ) as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    assert "[DONE]" in body
    state = _counter(redis_client, cast, budget)
    assert int(state["reserved"]) == 0
    assert int(state["spent"]) == 50 * NANOS_PER_USD // 1000  # 50 tokens x $0.001


def test_free_model_passes_an_exhausted_budget_and_unpriced_is_refused(world, redis_client):
    from billing.models import PriceOverride
    from billing.services.budgets import budget_create
    from gateway.snapshots import publish_workspace
    from workspaces.tenancy import workspace_scope

    cast, sim_url, gateways = world
    with workspace_scope(cast.workspace.pk):
        PriceOverride.objects.create(
            workspace=cast.workspace,
            provider="openai",
            model="llama-free",
            input_per_mtok=Decimal(0),
            output_per_mtok=Decimal(0),
        )
        budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="0",
            period="month",
            throttle_at=None,
        )
    publish_workspace(cast.workspace.pk)
    key = _issue(cast, name="free")
    snapshots_expire()
    headers = {"Authorization": f"Bearer {key}"}

    def chat(model):
        return httpx.post(
            f"{gateways[0]}/v1/chat/completions",
            headers=headers,
            timeout=30,
            json={
                "model": model,
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "hi"}],
            },
        )

    httpx.post(sim_url + "/_sim/reset")
    assert chat("gpt-4o").status_code == 402  # a $0 budget: every paid call is at the cap
    assert chat("llama-free").status_code == 200  # a zero-price model is not blocked
    unpriced = chat("totally-unknown-model-x")
    assert unpriced.status_code in (400, 402, 404)  # refused, never treated as free
    assert httpx.get(sim_url + "/_sim/stats").json()["total"] == 1


def test_budget_remaining_header_on_successful_calls_with_the_openai_sdk(world):
    """Every admitted call (plain and streaming) carries the tightest money budget's remaining
    amount, after this call's reservation; it falls as the budget is spent. No money budget on
    the chain: the header is omitted."""
    import openai

    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    cast, _sim_url, gateways = world
    key = _issue(cast, name="sdk")
    client = openai.OpenAI(base_url=gateways[0] + "/v1", api_key=key, max_retries=0)
    messages = [{"role": "user", "content": "hello [[sim:tokens=50]]"}]

    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=100, messages=messages
    )
    assert raw.status_code == 200
    assert "alephant-budget-remaining-usd" not in raw.headers

    with workspace_scope(cast.workspace.pk):
        budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="1.00",
            period="month",
            throttle_at=None,
        )
        # A looser budget on the workspace: the header shows the tightest one.
        budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="workspace",
            scope_id=cast.workspace.pk,
            amount_usd="5.00",
            period="month",
            throttle_at=None,
        )
    snapshots_expire()  # the gateways re-read the workspace snapshot

    # The earlier call ($0.05) predates the budgets but is in the ledger the counter is
    # rebuilt from; worst case $0.10 is reserved: 1.00 - 0.05 - 0.10.
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=100, messages=messages
    )
    assert first.status_code == 200
    assert first.parse().choices[0].message.content
    remaining_first = Decimal(first.headers["alephant-budget-remaining-usd"])
    assert Decimal("0.80") <= remaining_first <= Decimal("0.90")

    second = client.chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=100, messages=messages
    )
    assert second.status_code == 200
    remaining_second = Decimal(second.headers["alephant-budget-remaining-usd"])
    assert remaining_second == remaining_first - Decimal("0.05")  # the first call's spend

    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o", max_tokens=100, messages=messages, stream=True
    )
    assert stream.status_code == 200
    remaining_stream = Decimal(stream.headers["alephant-budget-remaining-usd"])
    assert remaining_stream == remaining_second - Decimal("0.05")
    chunks = list(stream.parse())
    assert any(c.choices and c.choices[0].delta.content for c in chunks)
