"""The standalone gateway (`uvicorn gateway.asgi:application`, no Django process beside it)
admits, rebuilds missing budget counters from the Postgres ledger and settles on its own.

Only the simulator and this module's own standalone gateway process serve these calls."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import httpx
import pytest

from core.money import NANOS_PER_USD
from core.periods import period_bounds
from core.rediskeys import budget_counter
from tests.gateway import servers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standalone(simulator, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = servers.test_env()
    proc, base = servers.start_gateway(env, app="gateway.asgi:application")
    yield base
    proc.kill()


@pytest.fixture
def world(transactional_db, simulator, redis_client):
    from billing.models import PriceOverride
    from billing.services.budgets import budget_create
    from tests.cast import build_cast
    from tests.gateway.conftest import add_provider_keys, issue_key
    from workspaces.tenancy import workspace_scope

    cast = build_cast("solo-")
    add_provider_keys(cast, simulator)
    with workspace_scope(cast.workspace.pk):
        # Output-only price: a call's cost is exactly max_tokens x $0.001.
        PriceOverride.objects.create(
            workspace=cast.workspace,
            provider="openai",
            model="gpt-4o",
            input_per_mtok=Decimal(0),
            output_per_mtok=Decimal(1000),
        )
        budget = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="1.00",
            period="month",
            throttle_at=None,
        )
    _obj, key = issue_key(cast)
    return cast, budget, key


def _spend_in_ledger(cast, cost: str) -> None:
    """Usage already in the system of record for this member this month."""
    from billing.models import UsageRecord
    from workspaces.tenancy import workspace_scope

    with workspace_scope(cast.workspace.pk):
        UsageRecord.objects.create(
            workspace_id=cast.workspace.pk,
            request_id=f"ledger-{cast.workspace.pk}-{cost}",
            member=cast.member,
            provider="openai",
            model="gpt-4o",
            endpoint="chat.completions",
            cost_usd=Decimal(cost),
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5),
        )


def _drop_counters(redis_client, cast) -> None:
    """As after a Redis restart or a new period: no budget counter of the workspace exists."""
    for name in redis_client.scan_iter(f"alephant:{{w{cast.workspace.pk}}}:b:*"):
        redis_client.delete(name)


def _call(base: str, key: str, max_tokens: int = 100) -> httpx.Response:
    return httpx.post(
        f"{base}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "gpt-4o",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"hi [[sim:tokens={max_tokens}]]"}],
        },
        timeout=30,
    )


def test_standalone_gateway_rebuilds_a_missing_counter_from_the_ledger(
    standalone, world, redis_client
):
    cast, budget, key = world
    _spend_in_ledger(cast, "0.30")
    _drop_counters(redis_client, cast)

    response = _call(standalone, key)

    assert response.status_code == 200, response.text
    assert response.headers["alephant-cost-usd"] == "0.10"
    period = period_bounds("month", cast.workspace.time_zone, time.time())[0]
    counter = redis_client.hgetall(budget_counter(cast.workspace.pk, budget.pk, period))
    # Rebuilt from the ledger (0.30), then this call settled (0.10): never reset to zero.
    assert int(counter[b"spent"]) == 4 * NANOS_PER_USD // 10
    assert int(counter[b"reserved"]) == 0


def test_standalone_gateway_refuses_a_budget_the_ledger_says_is_spent(
    standalone, simulator, world, redis_client
):
    cast, budget, key = world
    _spend_in_ledger(cast, "1.00")
    _drop_counters(redis_client, cast)
    before = httpx.get(simulator + "/_sim/stats").json()["total"]

    response = _call(standalone, key)

    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["type"] == "budget_exceeded" and f"budget {budget.pk}" in error["message"]
    assert httpx.get(simulator + "/_sim/stats").json()["total"] == before  # never forwarded
