"""The admit/settle scripts read their numbers packed (doubles) and their alert words lazily:
ladder crossings and refusals on budgets past the first of a chain, with ladders of different
lengths, must name the right budget, period, step and limit; throttle windows are passed only
for budgets that have one; reservation members written before the tag was left out (a deploy
while calls are in flight) still give their amount back when they expire."""

from __future__ import annotations

import asyncio

from core.periods import period_bounds
from gateway.hotpath.enforcer import Enforcer
from tests.billing.test_enforcement import (
    KEY,
    USD,
    budget,
    counter,
    request,
    run,  # noqa: F401 - the fixture
    workspace,
    zero_loader,
)


def _alerts(redis_client):
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in redis_client.xrange("alephant:alerts")
    ]


def test_settle_crossings_on_later_budgets_name_their_own_words(run, redis_client):  # noqa: F811
    ws = workspace(
        budget(7, "key", 10, limit_usd=100, ladder=[10]),
        budget(8, "member", 30, limit_usd=2, ladder=[25, 50, 80, 95, 100]),
        budget(9, "workspace", 1, limit_usd=1, period="day", ladder=[60, 100]),
    )

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        adm = await enforcer.admit(request(0.7), ws, KEY)
        assert adm.allowed
        await enforcer.settle(adm, cost_nanos=int(0.65 * USD), tokens=5)

    run(scenario)
    month = period_bounds("month", "UTC", __import__("time").time())[0]
    day = period_bounds("day", "UTC", __import__("time").time())[0]
    got = sorted(
        (a["budget_id"], a["period"], a["step"], a["limit"], a["spent"])
        for a in _alerts(redis_client)
    )
    spent = str(int(0.65 * USD))
    assert got == [
        ("8", month, "25", str(2 * USD), spent),
        ("9", day, "60", str(USD), spent),
    ]
    assert all(a["request_id"].startswith("req-") for a in _alerts(redis_client))
    for bid, period in ((7, "month"), (8, "month"), (9, "day")):
        state = counter(redis_client, bid, period)
        assert (int(state["spent"]), int(state["reserved"])) == (int(0.65 * USD), 0)


def test_refusal_on_a_later_budget_raises_its_own_ladder(run, redis_client):  # noqa: F811
    ws = workspace(
        budget(7, "key", 10, limit_usd=100, ladder=[10, 20]),
        budget(8, "member", 30, limit_usd=1, period="week", ladder=[50, 90]),
    )

    async def scenario(client):
        return await Enforcer(client, loader=zero_loader).admit(request(1.5), ws, KEY)

    refused = run(scenario)
    assert refused.status == 402 and refused.details["budget_id"] == 8
    week = period_bounds("week", "UTC", __import__("time").time())[0]
    got = [
        (a["budget_id"], a["period"], a["step"], a["limit"], a["refused"])
        for a in _alerts(redis_client)
    ]
    assert got == [(b, week, s, str(USD), "1") for b, s in (("8", "50"), ("8", "90"), ("8", "100"))]
    assert int(counter(redis_client, 7)["reserved"]) == 0  # atomic: nothing reserved


def test_throttle_and_rpm_windows_past_unthrottled_budgets(run, redis_client):  # noqa: F811
    ws = workspace(
        budget(7, "key", 10, limit_usd=100),
        budget(8, "member", 30, limit_usd=1, throttle_at=10, throttle_rpm=2),
        budget(9, "workspace", 1, limit_usd=100),
        {**budget(10, "agent", 20), "metric": "rpm", "limit": 3},
    )

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader)
        out = []
        for _ in range(4):
            # From the second call on, spend (0.1 a call) is in member 8's band (10 % of 1).
            adm = await enforcer.admit(request(0.2), ws, KEY)
            out.append(adm)
            if adm.allowed:
                await enforcer.settle(adm, cost_nanos=int(0.1 * USD), tokens=1)
        return out

    out = run(scenario)
    assert [a.allowed for a in out] == [True, True, True, False]
    assert out[3].status == 429 and out[3].details["budget_id"] == 8
    assert redis_client.zcard("alephant:{w1}:th:8") == 2
    assert redis_client.zcard("alephant:{w1}:rw:10") == 3
    assert not redis_client.exists("alephant:{w1}:th:7", "alephant:{w1}:th:9")


def test_an_expired_reservation_in_the_old_member_format_is_given_back(run, redis_client):  # noqa: F811
    ws = workspace(budget(1, limit_usd=1))

    async def scenario(client):
        enforcer = Enforcer(client, loader=zero_loader, reservation_ttl_s=0.3)
        first = await enforcer.admit(request(0.1), ws, KEY)  # seeds the counter
        await enforcer.settle(first, cost_nanos=0, tokens=0)
        key = f"alephant:{{w1}}:b:1:{period_bounds('month', 'UTC', __import__('time').time())[0]}"
        epoch = (await client.hget(key, "init")).decode()
        # What the previous admit script wrote: the whole counter key in the member.
        await client.hincrby(key, "reserved", int(0.9 * USD))
        await client.zadd("alephant:{w1}:resv", {f"old-req|{key}={epoch}={int(0.9 * USD)}": 1})
        await asyncio.sleep(0.05)
        return await enforcer.admit(request(0.5), ws, KEY)

    later = run(scenario)
    assert later.allowed
    assert int(counter(redis_client, 1)["reserved"]) == int(0.5 * USD)
