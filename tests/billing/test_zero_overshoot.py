"""Zero overshoot: many concurrent calls racing for the last dollar never push settled spend
past a hard stop, in one process (asyncio.gather, several connections) and across two OS
processes sharing one Redis. Plus: a flushed Redis is rebuilt from the Postgres ledger."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
from decimal import Decimal

import pytest
import redis.asyncio as aioredis
from django.conf import settings
from django.utils import timezone

from core.money import NANOS_PER_USD
from core.periods import period_bounds
from gateway.hotpath.admission import AdmitRequest
from gateway.hotpath.enforcer import Enforcer

USD = NANOS_PER_USD
CAP_USD = 1
RESERVE = USD // 10  # worst case of one call (max_tokens x output price): ~10 fit the cap


def _workspace(ws_id: int = 1, budgets=None) -> dict:
    budgets = budgets or [
        {
            "id": 1,
            "scope_type": "key",
            "scope_id": 10,
            "metric": "usd",
            "limit": CAP_USD * USD,
            "period": "day",
            "ladder": [50, 75, 90, 100],
            "throttle_at": 90,
            "throttle_rpm": 1000,
            "hard_stop": True,
            "model": None,
        },
        {
            "id": 2,
            "scope_type": "workspace",
            "scope_id": ws_id,
            "metric": "usd",
            "limit": 500 * USD,
            "period": "month",
            "ladder": [50, 100],
            "throttle_at": None,
            "throttle_rpm": None,
            "hard_stop": True,
            "model": None,
        },
    ]
    return {
        "v": 1,
        "workspace_id": ws_id,
        "time_zone": "UTC",
        "rpm_floor": 1000,
        "budgets": budgets,
        "settings": {},
    }


def _req(i: int, prefix: str = "r", ws_id: int = 1, member_id=None) -> AdmitRequest:
    return AdmitRequest(
        request_id=f"{prefix}-{i}",
        workspace_id=ws_id,
        key_id=10,
        member_id=member_id,
        department_id=None,
        agent_id=None,
        provider="openai",
        model="gpt-4o",
        estimated_input_tokens=1000,
        max_output_tokens=4000,
        reserve_nanos=RESERVE,
        fingerprint="",
        session_id=None,
    )


async def _zero(workspace_id, items):
    return [0 for _ in items]


def _client() -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(settings.REDIS_URL, max_connections=64)
    return aioredis.Redis(connection_pool=pool)


def _spent(redis_client, budget_id: int, period: str, ws_id: int = 1) -> dict:
    key, _s, _e = period_bounds(period, "UTC", time.time())
    raw = redis_client.hgetall(f"alephant:{{w{ws_id}}}:b:{budget_id}:{key}")
    return {k.decode(): int(v) if v.isdigit() else v.decode() for k, v in raw.items()}


def test_64_concurrent_calls_worst_case_settle_exactly_at_the_cap(redis_client):
    async def scenario():
        clients = [_client() for _ in range(4)]  # like several gateway workers
        enforcers = [Enforcer(c, loader=_zero) for c in clients]
        ws = _workspace()

        async def one(i):
            enforcer = enforcers[i % 4]
            adm = await enforcer.admit(_req(i), ws, {"rpm": None})
            if adm.allowed:
                await asyncio.sleep(0.01)  # the provider call
                await enforcer.settle(adm, cost_nanos=RESERVE, tokens=5000)  # worst case
            return adm

        results = await asyncio.gather(*(one(i) for i in range(64)))
        for c in clients:
            await c.aclose()
        return results

    results = asyncio.run(scenario())
    allowed = [a for a in results if a.allowed]
    refused = [a for a in results if not a.allowed]
    assert len(allowed) == 10
    assert all(a.status == 402 and a.error_type == "budget_exceeded" for a in refused)
    counter = _spent(redis_client, 1, "day")
    assert counter["spent"] == CAP_USD * USD  # exactly the cap, never above
    assert counter["reserved"] == 0
    assert _spent(redis_client, 2, "month")["spent"] == CAP_USD * USD


WORKER = textwrap.dedent(
    """
    import asyncio, json, os, random, sys, time
    import redis.asyncio as aioredis
    from tests.billing.test_zero_overshoot import _workspace, _req, _zero, RESERVE
    from gateway.hotpath.admission import AdmitRequest
    from gateway.hotpath.enforcer import Enforcer

    async def main(name, n):
        pool = aioredis.BlockingConnectionPool.from_url(os.environ["REDIS_URL"], max_connections=32)
        client = aioredis.Redis(connection_pool=pool)
        enforcer = Enforcer(client, loader=_zero)
        while not await client.exists("test:go"):
            await asyncio.sleep(0.002)
        ws = _workspace()
        rng = random.Random(name)

        async def one(i):
            adm = await enforcer.admit(_req(i, prefix=name), ws, {"rpm": None})
            if not adm.allowed:
                return [adm.status, 0]
            await asyncio.sleep(rng.random() / 50)
            cost = rng.randint(RESERVE // 2, RESERVE)  # provider usage <= worst case
            if i % 7 == 0:
                await enforcer.release(adm)  # upstream error
                return [0, 0]
            await enforcer.settle(adm, cost_nanos=cost, tokens=100)
            return [200, cost]

        out = await asyncio.gather(*(one(i) for i in range(n)))
        await client.aclose()
        print(json.dumps(out))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


@pytest.mark.slow
def test_two_processes_racing_never_pass_the_cap(redis_client):
    env = {
        **os.environ,
        "REDIS_URL": settings.REDIS_URL,
        "DJANGO_SETTINGS_MODULE": "alephant.settings.test",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, name, "32"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=settings.BASE_DIR,
        )
        for name in ("gw-a", "gw-b")
    ]
    time.sleep(0.8)  # both processes are polling for the start signal
    redis_client.set("test:go", 1)
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        outputs.append(json.loads(out))
    calls = [c for out in outputs for c in out]
    settled = sum(cost for _status, cost in calls)
    statuses = [status for status, _cost in calls]
    assert len(calls) == 64
    assert set(statuses) <= {200, 0, 402}
    assert statuses.count(402) >= 32  # most calls were refused before any provider saw them
    counter = _spent(redis_client, 1, "day")
    assert counter["spent"] == settled
    assert settled <= CAP_USD * USD
    assert counter["reserved"] == 0


@pytest.mark.django_db(transaction=True)
def test_flushed_redis_is_rebuilt_from_the_ledger_not_reset_to_zero(redis_client):
    from billing.models import UsageRecord
    from tests.cast import build_cast
    from workspaces.tenancy import workspace_scope

    cast = build_cast("flush-")
    ws_id = cast.workspace.pk
    now = timezone.now()
    month_start = period_bounds("month", "UTC", now.timestamp())[1]
    with workspace_scope(ws_id):
        for i, (cost, member, at) in enumerate(
            [
                ("0.30", cast.member, now - dt.timedelta(seconds=5)),
                ("0.25", cast.member, now - dt.timedelta(seconds=1)),
                ("0.40", cast.member, month_start - dt.timedelta(seconds=1)),  # last month
                ("0.50", cast.admin, now),  # another member
            ]
        ):
            UsageRecord.objects.create(
                workspace_id=ws_id,
                request_id=f"ledger-{i}",
                member=member,
                provider="openai",
                model="gpt-4o",
                endpoint="chat.completions",
                cost_usd=Decimal(cost),
                created_at=at,
            )
    budgets = [
        {
            "id": 7,
            "scope_type": "member",
            "scope_id": cast.member.pk,
            "metric": "usd",
            "limit": USD,
            "period": "month",
            "ladder": [100],
            "throttle_at": None,
            "throttle_rpm": None,
            "hard_stop": True,
            "model": "gpt-4o*",
        },
        {
            "id": 8,
            "scope_type": "workspace",
            "scope_id": ws_id,
            "metric": "requests",
            "limit": 100,
            "period": "month",
            "ladder": [100],
            "throttle_at": None,
            "throttle_rpm": None,
            "hard_stop": True,
            "model": None,
        },
    ]
    ws = _workspace(ws_id, budgets)

    # Django side: imported here, since WORKER imports this module without Django set up.
    from gateway.loader import ledger_loader

    async def scenario():
        client = _client()
        enforcer = Enforcer(client, loader=ledger_loader)  # the real ORM loader, in a thread
        first = await enforcer.admit(_req(1, "a", ws_id, cast.member.pk), ws, {"rpm": None})
        await enforcer.settle(first, cost_nanos=RESERVE, tokens=10)
        await client.flushdb()  # Redis restarted mid-period
        # 0.55 in the ledger (the settled 0.10 is still in the usage queue, not the ledger).
        second = await enforcer.admit(_req(2, "a", ws_id, cast.member.pk), ws, {"rpm": None})
        third = await enforcer.admit(_req(3, "a", ws_id, cast.member.pk), ws, {"rpm": None})
        await client.aclose()
        return first, second, third

    first, second, third = asyncio.run(scenario())
    assert first.allowed and first.headers["Alephant-Budget-Remaining-USD"] == "0.35"
    # Rebuilt from the ledger (0.55 this month for this member), not reset to zero.
    assert second.allowed and second.headers["Alephant-Budget-Remaining-USD"] == "0.35"
    counter = _spent(redis_client, 7, "month", ws_id)
    assert counter["spent"] == int(Decimal("0.55") * USD)
    assert _spent(redis_client, 8, "month", ws_id)["spent"] == 3  # three rows this month
    assert third.allowed  # 0.55 + 0.1 + 0.1 <= 1


def test_reconcile_raises_a_counter_behind_the_ledger_never_lowers_it(scoped, redis_client):
    from billing.models import UsageRecord
    from billing.services.budgets import budget_create
    from billing.services.counters import counters_reconcile

    ws = scoped.workspace
    budget = budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="workspace",
        scope_id=ws.pk,
        amount_usd="10",
        period="month",
    )
    key = period_bounds("month", ws.time_zone, time.time())[0]
    counter = f"alephant:{{w{ws.pk}}}:b:{budget.pk}:{key}"
    redis_client.hset(counter, mapping={"init": "e1", "spent": USD, "reserved": 0})
    UsageRecord.objects.create(
        workspace=ws,
        request_id="rc-1",
        provider="openai",
        model="gpt-4o",
        endpoint="chat.completions",
        cost_usd=Decimal("1.5"),
    )
    # The ledger has 1.5, the counter 1.0 (a settle was lost): raised to 1.5.
    assert counters_reconcile(workspace=ws, client=redis_client) == {budget.pk: USD // 2}
    assert int(redis_client.hget(counter, "spent")) == USD + USD // 2
    # The counter ahead of the ledger (usage still queued) is left alone.
    redis_client.hset(counter, "spent", 3 * USD)
    assert counters_reconcile(workspace=ws, client=redis_client) == {}
    assert int(redis_client.hget(counter, "spent")) == 3 * USD


def test_ledger_totals_per_scope_model_filter_and_metric(scoped):
    from billing.models import UsageRecord
    from billing.services.counters import counters_from_ledger
    from gateway.services.keys import gateway_key_create

    ws = scoped.workspace
    key, _ = gateway_key_create(workspace=ws, name="k", member=scoped.member)
    now = dt.datetime.now(dt.UTC)
    rows = [
        ("openai", "gpt-4o-mini", "0.10", key, 200),
        ("anthropic", "claude-3-5-haiku", "0.20", key, 200),
        ("openai", "gpt-4.1", "0.40", None, 200),
        ("openai", "gpt-4o", "0", key, 402),  # refused: no cost, no quota
    ]
    for i, (provider, model, cost, gk, code) in enumerate(rows):
        UsageRecord.objects.create(
            workspace=ws,
            request_id=f"lt-{i}",
            provider=provider,
            model=model,
            endpoint="chat.completions",
            gateway_key=gk,
            member=scoped.member,
            cost_usd=Decimal(cost),
            status_code=code,
            input_tokens=10,
            output_tokens=5,
            created_at=now,
        )
    item = {
        "scope_type": "key",
        "scope_id": key.pk,
        "start": now - dt.timedelta(hours=1),
        "end": now + dt.timedelta(hours=1),
    }
    totals = counters_from_ledger(
        workspace_id=ws.pk,
        items=[
            {**item, "metric": "usd"},
            {**item, "metric": "usd", "model": "gpt-4o*"},
            {**item, "metric": "usd", "model": "anthropic/*"},
            {**item, "metric": "requests"},
            {**item, "metric": "tokens"},
            {**item, "scope_type": "member", "scope_id": scoped.member.pk, "metric": "usd"},
            {
                **item,
                "scope_type": "workspace",
                "scope_id": ws.pk,
                "metric": "usd",
                "model": "gpt-4.?",
            },
        ],
    )
    assert totals == [
        int(0.3 * USD),
        int(0.1 * USD),
        int(0.2 * USD),
        2,
        45,
        int(0.7 * USD),
        int(0.4 * USD),
    ]
