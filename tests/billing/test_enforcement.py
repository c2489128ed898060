"""The Enforcer against a real Redis: budgets on the chain, refusal rule, quotas, rate caps,
throttle band, loop breaker, settle-once, release, NOSCRIPT, Redis down."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from core.money import NANOS_PER_USD
from core.periods import period_bounds
from gateway.hotpath.admission import AdmitRequest
from gateway.hotpath.admission import Handle as _Handle
from gateway.hotpath.enforcer import Enforcer

USD = NANOS_PER_USD
_ids = itertools.count(1)


async def zero_loader(workspace_id, items):
    return [0 for _ in items]


def budget(bid, scope_type="workspace", scope_id=1, limit_usd=1, **extra):
    entry = {
        "id": bid,
        "scope_type": scope_type,
        "scope_id": scope_id,
        "metric": "usd",
        "limit": int(limit_usd * USD),
        "period": "month",
        "ladder": [50, 75, 90, 100],
        "throttle_at": None,
        "throttle_rpm": None,
        "hard_stop": True,
        "model": None,
    }
    entry.update(extra)
    return entry


def workspace(*budgets, rpm_floor=100, settings_=None, ws_id=1):
    return {
        "v": 1,
        "workspace_id": ws_id,
        "time_zone": "UTC",
        "rpm_floor": rpm_floor,
        "budgets": list(budgets),
        "settings": settings_ or {},
    }


def request(
    reserve_usd=0.1,
    *,
    model="gpt-4o",
    provider="openai",
    key_id=10,
    agent_id=20,
    member_id=30,
    department_id=40,
    ws_id=1,
    fingerprint="",
    session_id=None,
    reserve_nanos=None,
    max_output_tokens=100,
):
    return AdmitRequest(
        request_id=f"req-{next(_ids)}",
        workspace_id=ws_id,
        key_id=key_id,
        member_id=member_id,
        department_id=department_id,
        agent_id=agent_id,
        provider=provider,
        model=model,
        estimated_input_tokens=50,
        max_output_tokens=max_output_tokens,
        reserve_nanos=int(reserve_usd * USD) if reserve_nanos is None else reserve_nanos,
        fingerprint=fingerprint,
        session_id=session_id,
    )


KEY = {"rpm": None, "tpm": None}


@pytest.fixture
def run(redis_client):
    """Run a coroutine factory with a fresh asyncio Redis client on the test Redis db."""

    def runner(factory):
        async def main():
            # A blocking pool, as the gateway should use: 150 concurrent calls wait for a
            # connection instead of failing with "Too many connections".
            pool = aioredis.BlockingConnectionPool.from_url(settings.REDIS_URL, max_connections=32)
            client = aioredis.Redis(connection_pool=pool)
            try:
                return await factory(client)
            finally:
                await client.aclose()

        return asyncio.run(main())

    return runner


def counter(redis_client, budget_id, period="month", ws_id=1):
    key, _s, _e = period_bounds(period, "UTC", __import__("time").time())
    raw = redis_client.hgetall(f"alephant:{{w{ws_id}}}:b:{budget_id}:{key}")
    return {k.decode(): v.decode() for k, v in raw.items()}


def test_refusal_rule_exactly_at_the_cap(run, redis_client):
    ws = workspace(budget(1, limit_usd=1))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        out = []
        # 0.4 + 0.6 lands exactly on the cap: admitted (spend may reach, never pass, the cap).
        for reserve in (0.4, 0.6):
            adm = await enforcer.admit(request(reserve), ws, KEY)
            out.append(adm)
            await enforcer.settle(adm, cost_nanos=int(reserve * USD), tokens=10)
        # Spent == limit: the next paid call is refused, however small.
        out.append(await enforcer.admit(request(reserve_nanos=1), ws, KEY))
        # A zero-price model is not blocked by a money budget, even at the cap.
        out.append(await enforcer.admit(request(reserve_nanos=0, model="llama-local"), ws, KEY))
        return out

    a, b, refused, free = run(scenario)
    assert a.allowed and b.allowed
    assert a.headers["Alephant-Budget-Remaining-USD"] == "0.60"
    assert b.headers["Alephant-Budget-Remaining-USD"] == "0.00"
    assert not refused.allowed and refused.status == 402 and refused.error_type == "budget_exceeded"
    assert refused.details["spent"] == "1.00" and refused.details["limit"] == "1.00"
    assert refused.details["budget_id"] == 1 and refused.details["scope_type"] == "workspace"
    assert refused.details["resets_at"].startswith(
        period_bounds("month", "UTC", __import__("time").time())[2].isoformat()[:10]
    )
    assert "Resets at" in refused.message
    assert free.allowed
    assert int(counter(redis_client, 1)["spent"]) == USD


def test_a_call_that_could_pass_the_cap_is_refused_and_reserves_nothing(run, redis_client):
    ws = workspace(budget(1, "key", 10, limit_usd=1), budget(2, "workspace", 1, limit_usd=100))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        first = await enforcer.admit(request(0.7), ws, KEY)
        second = await enforcer.admit(request(0.31), ws, KEY)  # 0.7 + 0.31 > 1
        third = await enforcer.admit(request(0.3), ws, KEY)  # 0.7 + 0.3 == 1
        return first, second, third

    first, second, third = run(scenario)
    assert first.allowed and not second.allowed and third.allowed
    assert second.details["scope_type"] == "key" and second.details["reserved"] == "0.70"
    # The refusal is atomic: the workspace budget got no reservation from the refused call.
    assert int(counter(redis_client, 2)["reserved"]) == int(1.0 * USD)
    assert int(counter(redis_client, 1)["reserved"]) == int(1.0 * USD)


def test_every_budget_on_the_chain_is_checked_and_the_tightest_is_reported(run):
    ws = workspace(
        budget(1, "key", 10, limit_usd=50),
        budget(2, "agent", 20, limit_usd=5),
        budget(3, "member", 30, limit_usd=40),
        budget(4, "department", 40, limit_usd=0.25),
        budget(5, "workspace", 1, limit_usd=1000),
        budget(6, "member", 99, limit_usd=0.01),  # another member: not on this chain
        budget(7, "agent", 20, limit_usd=0.01, model="anthropic/*"),  # other model family
    )

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        ok = await enforcer.admit(request(0.1), ws, KEY)
        await enforcer.settle(ok, cost_nanos=int(0.1 * USD), tokens=10)
        refused = await enforcer.admit(request(0.2), ws, KEY)
        claude = await enforcer.admit(
            request(0.1, model="claude-3-5-sonnet", provider="anthropic"), ws, KEY
        )
        return ok, refused, claude

    ok, refused, claude = run(scenario)
    assert ok.allowed and ok.headers["Alephant-Budget-Remaining-USD"] == "0.15"
    assert refused.status == 402 and refused.details["scope_type"] == "department"
    assert refused.details["budget_id"] == 4
    assert claude.status == 402 and claude.details["budget_id"] == 7


def test_model_filter_globs(run):
    ws = workspace(budget(1, limit_usd=0.05, model="gpt-4o*"))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        return [
            await enforcer.admit(request(0.1, model="gpt-4o-mini"), ws, KEY),
            await enforcer.admit(request(0.1, model="gpt-4.1"), ws, KEY),
            await enforcer.admit(request(0.1, model="o3"), ws, KEY),
        ]

    mini, other, o3 = run(scenario)
    assert mini.status == 402 and other.allowed and o3.allowed
    assert "Alephant-Budget-Remaining-USD" not in other.headers  # no budget applies


def test_settle_exactly_once_and_release(run, redis_client):
    ws = workspace(budget(1, limit_usd=10))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        a = await enforcer.admit(request(1), ws, KEY)
        await enforcer.settle(a, cost_nanos=int(0.25 * USD), tokens=10)
        await enforcer.settle(a, cost_nanos=int(0.25 * USD), tokens=10)
        # Another gateway process holding a copy of the handle cannot settle it again.
        copy = type(a)(True, handle=_Handle(**{**a.handle.__dict__, "done": False}))
        await Enforcer(client, loader=zero_loader).settle(copy, cost_nanos=int(5 * USD), tokens=1)
        b = await enforcer.admit(request(2), ws, KEY)
        in_flight = counter(redis_client, 1)
        await enforcer.release(b)  # upstream error / timeout / client disconnect
        await enforcer.release(b)
        return in_flight

    in_flight = run(scenario)
    assert int(in_flight["reserved"]) == 2 * USD
    after = counter(redis_client, 1)
    assert int(after["spent"]) == int(0.25 * USD)
    assert int(after["reserved"]) == 0


def test_request_and_token_quotas_and_per_request_cap(run):
    ws = workspace(
        {**budget(1, "key", 10), "metric": "requests", "limit": 3, "period": "day"},
        {**budget(2, "agent", 20), "metric": "tokens", "limit": 1000, "period": "day"},
        {**budget(3, "agent", 20), "metric": "request_usd", "limit": int(0.5 * USD)},
    )

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        out = []
        for _ in range(4):
            adm = await enforcer.admit(request(0.01, max_output_tokens=100), ws, KEY)
            out.append(adm)
            if adm.allowed:
                await enforcer.settle(adm, cost_nanos=1, tokens=120)
        big = await enforcer.admit(request(0.01, key_id=11, max_output_tokens=800), ws, KEY)
        pricey = await enforcer.admit(request(0.6, key_id=11), ws, KEY)
        return out, big, pricey

    out, big, pricey = run(scenario)
    assert [a.allowed for a in out] == [True, True, True, False]
    assert out[3].details["metric"] == "requests" and out[3].details["limit"] == "3"
    # 360 tokens settled + 850 estimated > 1000: refused by the agent's token quota.
    assert big.status == 402 and big.details["metric"] == "tokens"
    assert pricey.status == 402 and pricey.details["metric"] == "request_usd"
    assert "per-request cap" in pricey.message


def test_rate_cap_100_rpm_holds_under_concurrency(run):
    ws = workspace()

    async def scenario(client):
        enforcers = [Enforcer(client, loader=zero_loader) for _ in range(4)]
        return await asyncio.gather(
            *(enforcers[i % 4].admit(request(0), ws, KEY) for i in range(150))
        )

    results = run(scenario)
    allowed = [a for a in results if a.allowed]
    refused = [a for a in results if not a.allowed]
    assert len(allowed) == 100
    assert all(a.status == 429 and a.error_type == "rate_limit_exceeded" for a in refused)
    assert all(1 <= int(a.headers["Retry-After"]) <= 60 for a in refused)


def test_key_rpm_and_tpm(run):
    ws = workspace()

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        rpm = [await enforcer.admit(request(0), ws, {"rpm": 3, "tpm": None}) for _ in range(4)]
        tpm = [
            await enforcer.admit(
                request(0, key_id=11, max_output_tokens=450), ws, {"rpm": None, "tpm": 1000}
            )
            for _ in range(3)
        ]
        return rpm, tpm

    rpm, tpm = run(scenario)
    assert [a.allowed for a in rpm] == [True, True, True, False]
    assert [a.allowed for a in tpm] == [True, True, False]
    assert "tokens/minute" in tpm[2].message


def test_throttle_band_drops_the_scope_rpm(run):
    ws = workspace(budget(1, "member", 30, limit_usd=10, throttle_at=50, throttle_rpm=2))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        first = await enforcer.admit(request(6), ws, KEY)
        await enforcer.settle(first, cost_nanos=6 * USD, tokens=1)  # 60%: in the band
        return [await enforcer.admit(request(0.01), ws, KEY) for _ in range(3)]

    results = run(scenario)
    assert [a.allowed for a in results] == [True, True, False]
    assert results[2].status == 429 and "throttle" in results[2].message
    assert int(results[2].headers["Retry-After"]) >= 1


def test_loop_breaker_alerts_and_refuses_when_enabled(run, redis_client):
    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader, loop_max_repeats=3, loop_window_s=60)
        alert_only = [
            await enforcer.admit(request(0, fingerprint="fp1"), workspace(), KEY) for _ in range(5)
        ]
        enforcing = workspace(settings_={"loop_breaker": True})
        breaker = [
            await enforcer.admit(request(0, fingerprint="fp2"), enforcing, KEY) for _ in range(5)
        ]
        other_session = await enforcer.admit(
            request(0, fingerprint="fp2", agent_id=None, session_id="s1"), enforcing, KEY
        )
        return alert_only, breaker, other_session

    alert_only, breaker, other_session = run(scenario)
    assert all(a.allowed for a in alert_only)
    assert [a.allowed for a in breaker] == [True, True, True, False, False]
    assert breaker[3].status == 429 and breaker[3].error_type == "loop_detected"
    assert other_session.allowed
    events = redis_client.xrange("alephant:alerts")
    loops = [f for _id, f in events if f[b"kind"] == b"loop"]
    assert len(loops) == 2  # one per fingerprint and window, not one per repeat


def test_script_reloaded_after_redis_forgot_it(run, redis_client):
    ws = workspace(budget(1))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        first = await enforcer.admit(request(0.1), ws, KEY)
        await client.script_flush()
        second = await enforcer.admit(request(0.1), ws, KEY)
        await enforcer.settle(second, cost_nanos=5, tokens=1)
        return first, second

    first, second = run(scenario)
    assert first.allowed and second.allowed
    assert int(counter(redis_client, 1)["spent"]) == 5


def test_redis_down_fails_closed_by_default_and_open_when_configured(redis_client):
    ws = workspace(budget(1))

    async def scenario():
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        dead = aioredis.Redis(
            host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
        )
        closed = await Enforcer(dead, loader=zero_loader).admit(request(0.1), ws, KEY)
        opened = await Enforcer(dead, loader=zero_loader, fail_open=True).admit(
            request(0.1), ws, KEY
        )
        await Enforcer(dead, loader=zero_loader, fail_open=True).settle(
            opened, cost_nanos=1, tokens=1
        )
        await dead.aclose()
        return closed, opened

    closed, opened = asyncio.run(scenario())
    assert not closed.allowed and closed.status == 503
    assert closed.error_type == "service_unavailable" and closed.headers["Retry-After"]
    assert opened.allowed and opened.headers.get("Alephant-Enforcement") == "fail-open"


def test_missing_counters_are_rebuilt_before_admitting(run, redis_client):
    calls = []

    async def loader(workspace_id, items):
        calls.append(items)
        return [int(0.95 * USD) for _ in items]

    ws = workspace(budget(1, limit_usd=1))

    async def scenario(client):
        enforcer = Enforcer(client, loader=loader)
        first = await enforcer.admit(request(0.1), ws, KEY)  # counter missing -> 0.95 from ledger
        second = await enforcer.admit(request(0.05), ws, KEY)
        return first, second

    first, second = run(scenario)
    assert len(calls) == 1 and calls[0][0]["budget_id"] == 1 and calls[0][0]["start"] is not None
    assert first.status == 402 and first.details["spent"] == "0.95"
    assert second.allowed


def test_period_rollover_uses_a_new_counter(run, redis_client):
    ws = workspace(budget(1, limit_usd=1, period="day"))
    day = 86400.0
    base = 1_790_000_000.0  # some day, 00:00 UTC + x
    base -= base % day

    async def scenario(client):
        now = [base + 3600]
        enforcer = Enforcer(client, loader=zero_loader, clock=lambda: now[0])
        a = await enforcer.admit(request(1), ws, KEY)
        await enforcer.settle(a, cost_nanos=USD, tokens=1)
        blocked = await enforcer.admit(request(0.1), ws, KEY)
        now[0] = base + day + 1  # next day
        fresh = await enforcer.admit(request(0.1), ws, KEY)
        return blocked, fresh

    blocked, fresh = run(scenario)
    assert blocked.status == 402 and fresh.allowed


def test_periods_follow_the_workspace_time_zone():
    # 2026-03-29 00:30 UTC is already 01:30 in Paris (DST starts that night).
    ts = 1_774_744_200.0
    key, start, end = period_bounds("day", "Europe/Paris", ts)
    assert key == "d20260329"
    assert start.isoformat() == "2026-03-29T00:00:00+01:00"
    assert end.isoformat() == "2026-03-30T00:00:00+02:00"  # a 23-hour day
    assert period_bounds("day", "UTC", ts)[0] == "d20260329"
    assert period_bounds("day", "America/New_York", ts)[0] == "d20260328"
    key, start, end = period_bounds("week", "UTC", ts)
    assert start.weekday() == 0 and (end - start).days == 7
    assert period_bounds("month", "UTC", ts)[0] == "m202603"
    assert period_bounds("lifetime", "UTC", ts) == ("life", None, None)


def test_snapshot_json_round_trip_is_enough(run):
    """The Enforcer works from the JSON snapshot as published (no Python-only values)."""
    ws = json.loads(json.dumps(workspace(budget(1, limit_usd=1))))

    async def scenario(client):
        return await Enforcer(client, loader=zero_loader).admit(request(0.5), ws, KEY)

    assert run(scenario).allowed


def test_a_reservation_never_settled_expires(run, redis_client):
    """A gateway that died mid-call must not hold budget capacity for the rest of the period."""
    ws = workspace(budget(1, limit_usd=1))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader, reservation_ttl_s=0.3)
        orphan = await enforcer.admit(request(0.8), ws, KEY)  # never settled (process died)
        blocked = await enforcer.admit(request(0.5), ws, KEY)
        await asyncio.sleep(0.4)
        later = await enforcer.admit(request(0.5), ws, KEY)
        # A late settle of the expired call adds its cost but gives back nothing twice.
        await enforcer.settle(orphan, cost_nanos=int(0.1 * USD), tokens=1)
        return orphan, blocked, later

    orphan, blocked, later = run(scenario)
    assert orphan.allowed and blocked.status == 402 and later.allowed
    state = counter(redis_client, 1)
    assert int(state["reserved"]) == int(0.5 * USD)  # only the live call's reservation
    assert int(state["spent"]) == int(0.1 * USD)


def test_rpm_caps_on_agent_and_member_scopes(run):
    ws = workspace(
        {**budget(1, "agent", 20), "metric": "rpm", "limit": 3},
        {**budget(2, "member", 30), "metric": "rpm", "limit": 5},
    )

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        agent = [await enforcer.admit(request(0), ws, KEY) for _ in range(4)]
        # Same member, no agent: only the member cap (2 left of 5) applies.
        member = [
            await enforcer.admit(request(0, agent_id=None, key_id=12), ws, KEY) for _ in range(3)
        ]
        return agent, member

    agent, member = run(scenario)
    assert [a.allowed for a in agent] == [True, True, True, False]
    assert agent[3].status == 429 and agent[3].details["scope_type"] == "agent"
    assert [a.allowed for a in member] == [True, True, False]
    assert member[2].details["scope_type"] == "member"


def test_a_counter_that_cannot_be_rebuilt_fails_closed(run):
    async def broken_loader(workspace_id, items):
        raise RuntimeError("database unreachable")

    ws = workspace(budget(1, limit_usd=1))

    async def scenario(client):
        return await Enforcer(client, loader=broken_loader).admit(request(0.1), ws, KEY)

    refused = run(scenario)
    assert not refused.allowed and refused.status == 503
    assert refused.error_type == "service_unavailable"


def test_concurrent_calls_share_round_trips_and_survive_a_script_flush(run, redis_client):
    ws = workspace(budget(1, limit_usd=100))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        await enforcer.admit(request(0.1), ws, KEY)  # counters seeded
        await client.script_flush()  # Redis restarted: the pipelined batch meets NOSCRIPT
        admitted = await asyncio.gather(*(enforcer.admit(request(0.1), ws, KEY) for _ in range(20)))
        await asyncio.gather(
            *(enforcer.settle(a, cost_nanos=USD // 10, tokens=1) for a in admitted)
        )
        return admitted

    admitted = run(scenario)
    assert all(a.allowed for a in admitted)
    state = counter(redis_client, 1)
    assert int(state["spent"]) == 2 * USD and int(state["reserved"]) == int(0.1 * USD)


def test_alert_only_budget_counts_and_signals_but_never_refuses(run, redis_client):
    ws = workspace(budget(1, limit_usd=0.2, hard_stop=False, ladder=[100]))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        out = []
        for _ in range(3):
            adm = await enforcer.admit(request(0.1), ws, KEY)
            out.append(adm)
            await enforcer.settle(adm, cost_nanos=USD // 10, tokens=1)
        return out

    results = run(scenario)
    assert all(a.allowed for a in results)
    assert results[2].headers["Alephant-Budget-Remaining-USD"] == "0.00"
    assert int(counter(redis_client, 1)["spent"]) == 3 * USD // 10
    steps = [f[b"step"] for _id, f in redis_client.xrange("alephant:alerts")]
    assert steps == [b"100"]


def test_settle_appends_the_usage_events_in_the_same_script_call(run, redis_client):
    """One round trip: the counter change and the request's usage events land together; a
    repeated settle still appends (the ledger is idempotent by request id) but changes no
    counter; with no budget on the chain no script runs and the caller appends them itself."""
    from gateway.hotpath.usage import encode

    ws = workspace(budget(1, limit_usd=10))
    stream = "alephant:usage:test-settle"
    redis_client.delete(stream)

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        a = await enforcer.admit(request(1), ws, KEY)
        events = [encode({"request_id": a.handle.request_id, "cost_usd": "0.25"})]
        commands = []
        original = client.evalsha

        async def counting(*args, **kwargs):
            commands.append(args[0])
            return await original(*args, **kwargs)

        client.evalsha = counting
        written = await enforcer.settle(
            a, cost_nanos=int(0.25 * USD), tokens=10, usage=events, usage_stream=stream
        )
        client.evalsha = original
        copy = type(a)(True, handle=_Handle(**{**a.handle.__dict__, "done": False}))
        again = await enforcer.settle(
            copy, cost_nanos=int(0.25 * USD), tokens=10, usage=events, usage_stream=stream
        )
        free = await enforcer.admit(request(1, model="free", reserve_nanos=0), workspace(), KEY)
        unwritten = await enforcer.settle(
            free, cost_nanos=0, tokens=1, usage=events, usage_stream=stream
        )
        refused = await enforcer.release(type(a)(False, 402), usage=events, usage_stream=stream)
        return written, len(commands), again, unwritten, refused

    written, round_trips, again, unwritten, refused = run(scenario)
    assert written is True and round_trips == 1
    assert again is True
    assert unwritten is False and refused is False
    entries = redis_client.xrange(stream)
    assert len(entries) == 2
    assert json.loads(entries[0][1][b"e"])["cost_usd"] == "0.25"
    state = counter(redis_client, 1)
    assert int(state["spent"]) == USD // 4 and int(state["reserved"]) == 0
    redis_client.delete(stream)
