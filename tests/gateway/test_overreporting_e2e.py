"""A provider that returns more output than the reservation covered (issue 11).

The upstream here ignores `max_tokens`: every answer reports 20 output tokens whatever was
asked. Priced at $0.001 an output token (no input price), a call with `max_tokens: 5` reserves
$0.005 and costs $0.020. Through a real gateway: the ledger records what the provider reported,
the budget counter takes it, the next call is refused, and the overshoot past the cap is at most
the excess of the calls that were in flight (admitted) over their reservations -- the bound
README "Budgets" states.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import orjson
import pytest
from aiohttp import web

from core.money import NANOS_PER_USD
from core.periods import period_bounds
from core.rediskeys import budget_counter
from tests.gateway.upstreams import ThreadedUpstream, running

pytestmark = pytest.mark.slow

REPORTED_OUTPUT = 20
MAX_TOKENS = 5
PRICE_PER_TOKEN = Decimal("0.001")
RESERVED = MAX_TOKENS * PRICE_PER_TOKEN  # $0.005
COST = REPORTED_OUTPUT * PRICE_PER_TOKEN  # $0.020
EXCESS = COST - RESERVED  # $0.015 a call
CAP = Decimal("0.05")


class GreedyUpstream(ThreadedUpstream):
    """OpenAI-compatible; answers after `latency` s and reports REPORTED_OUTPUT tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.latency = 0.0
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.hits += 1
        await asyncio.sleep(self.latency)
        answer = {
            "id": "chatcmpl-greedy",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "word " * REPORTED_OUTPUT},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 3,
                "completion_tokens": REPORTED_OUTPUT,
                "total_tokens": 3 + REPORTED_OUTPUT,
            },
        }
        return web.Response(body=orjson.dumps(answer), content_type="application/json")


@pytest.fixture(scope="module")
def greedy():
    with running(GreedyUpstream()) as server:
        yield server


@pytest.fixture
def capped(gw, greedy):
    from billing.models import PriceOverride
    from billing.services.budgets import budget_create
    from gateway.services.keys import provider_key_create
    from workspaces.tenancy import workspace_scope

    cast = gw.cast
    with workspace_scope(cast.workspace.pk):
        provider_key_create(
            workspace=cast.workspace,
            provider="openai",
            name="greedy",
            secret="sk-greedy-0000",
            base_url=f"http://127.0.0.1:{greedy.port}/v1",
        )
        PriceOverride.objects.create(
            workspace=cast.workspace,
            provider="openai",
            model="gpt-4o",
            input_per_mtok=Decimal(0),
            output_per_mtok=PRICE_PER_TOKEN * 1_000_000,
        )
        budget = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd=str(CAP),
            period="month",
            throttle_at=None,
        )
    greedy.hits, greedy.latency = 0, 0.0
    return gw, budget


def _call(gw) -> httpx.Response:
    return httpx.post(
        gw.base + "/chat/completions",
        headers={"authorization": "Bearer " + gw.key},
        json={
            "model": "greedy/gpt-4o",
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=30,
    )


def _counter(redis_client, gw, budget) -> tuple[Decimal, Decimal]:
    """(spent, reserved) of the member budget's live counter, in dollars."""
    ws = gw.cast.workspace
    period = period_bounds("month", ws.time_zone, time.time())[0]
    counter = redis_client.hgetall(budget_counter(ws.pk, budget.pk, period))
    return (
        Decimal(int(counter[b"spent"])) / NANOS_PER_USD,
        Decimal(int(counter.get(b"reserved", 0))) / NANOS_PER_USD,
    )


def test_the_ledger_and_the_counter_take_what_the_provider_reported(capped, redis_client):
    gw, budget = capped
    admitted = 0
    while (response := _call(gw)).status_code == 200:
        admitted += 1
        assert response.headers["alephant-cost-usd"] == str(COST).rstrip("0")
        assert admitted < 10, "the cap never refused"
    assert response.status_code == 402, response.text
    assert response.json()["error"]["type"] == "budget_exceeded"
    rows = [r for r in gw.ledger() if r.status_code == 200]
    assert len(rows) == admitted
    assert all((r.output_tokens, r.cost_usd, r.estimated) == (20, COST, False) for r in rows)
    spent, reserved = _counter(redis_client, gw, budget)
    assert (spent, reserved) == (admitted * COST, 0)
    # Admitted while spent + $0.005 fit under $0.05: 0, 0.02, 0.04 -> three calls, $0.06 spent.
    assert admitted == 3
    overshoot = spent - CAP
    assert 0 < overshoot <= EXCESS  # one call in flight at a time: at most one call's excess


def test_concurrent_overshoot_is_bounded_by_the_excess_of_calls_in_flight(
    capped, greedy, redis_client
):
    gw, budget = capped
    burst = 16
    upstream = greedy
    upstream.latency = 0.5  # every admitted call is in flight when the others are admitted
    with ThreadPoolExecutor(burst) as pool:
        responses = list(pool.map(lambda _i: _call(gw), range(burst)))
    statuses = [r.status_code for r in responses]
    admitted = statuses.count(200)
    assert set(statuses) <= {200, 402}, statuses
    # Reservations alone fit the cap: at most $0.05 / $0.005 = 10 calls were let in together.
    assert 0 < admitted <= int(CAP / RESERVED)
    spent, reserved = _counter(redis_client, gw, budget)
    assert reserved == 0
    assert spent == admitted * COST
    overshoot = spent - CAP
    bound = admitted * EXCESS  # the excess of the calls in flight over their reservations
    print(
        f"\nover-reporting burst: {admitted}/{burst} admitted, spent ${spent} on a ${CAP} cap, "
        f"overshoot ${overshoot} <= bound ${bound}"
    )
    assert overshoot <= bound
    upstream.latency = 0.0
    assert _call(gw).status_code == 402  # the next call is refused
    assert upstream.hits == admitted
