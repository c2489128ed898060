"""The admit/settle words a chain gets from the per-snapshot cache (`budgets.chain_for`, its
`Frame`) are exactly those the uncached computation gives: same keys, same argument bytes, same
refusal, for any chain of scopes, metrics, model patterns, temporary increases that lapse and
periods whose boundaries `now` crosses. The reference below is the computation as it was before
the cache (issue 14), run on a fresh copy of the snapshot every step."""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.periods import PeriodCache
from core.rediskeys import alerts_stream, workspace_tag
from gateway.hotpath.admission import SETTLED_TTL_S, AdmitRequest, pack_double
from gateway.hotpath.budgets import (
    MONEY,
    PLANS_PER_SNAPSHOT,
    REQUESTS,
    _chain_uncached,
    chain_for,
    compiled,
    settle_call,
)
from gateway.hotpath.enforcer import _HEADER, Enforcer

WS = 77
BASE = datetime(2026, 11, 30, 23, 0, tzinfo=UTC).timestamp()  # a day, week, month boundary
OFFSETS = [-90_000, -3600, -1, 0, 1, 59, 3599, 3600, 3601, 7200, 90_000, 700_000, 3_000_000]
SCOPES = [
    ("key", 1),
    ("agent", 2),
    ("member", 3),
    ("department", 4),
    ("department", 5),
    ("workspace", WS),
    ("property", "team=x"),
    ("customer", "c1"),
]
METRICS = ["usd", "requests", "tokens", "rpm", "request_usd"]


def _reference(req, ws, key, enforcer, time_zone, now):
    """(chain, admit keys, admit args, what settle needs) computed without any cache."""
    ws = copy.deepcopy(ws)
    chain = _chain_uncached(req, ws, PeriodCache(), time_zone, now)
    if chain.over_request_cap is not None:
        return chain, None, None, None
    tag = workspace_tag(req.workspace_id)
    tokens = max(0, int(req.estimated_input_tokens)) + max(0, int(req.max_output_tokens))
    floor = int(ws.get("rpm_floor") or 100)
    rpm = min(int(key.get("rpm") or floor), floor)
    tpm = key.get("tpm") or 0
    sets = ws.get("settings") or {}
    loop_max = int(sets.get("loop_max_repeats") or enforcer.loop_max_repeats)
    loop_window = int(sets.get("loop_window_s") or enforcer.loop_window_s)
    subject = f"a{req.agent_id}" if req.agent_id is not None else ""
    if not req.fingerprint or not subject:
        loop_max = 0
    keys = [
        f"{tag}:rl:k{req.key_id}",
        f"{tag}:tpm:k{req.key_id}:{int(now // 60)}",
        f"{tag}:loop:{subject}:{req.fingerprint}",
        alerts_stream(req.workspace_id),
        f"{tag}:resv",
    ]
    counters, throttles, numbers, cold, strings, held = [], [], [], [], [], []
    by_metric = {MONEY: max(0, int(req.reserve_nanos)), REQUESTS: 1}
    for budget, pkey, _end in chain.counted:
        c = compiled(budget, req.workspace_id)
        reserve = by_metric.get(c.metric, tokens)
        counters.append(c.counter_prefix + pkey)
        if c.throttled:
            throttles.append(c.throttle_key)
        numbers += (pack_double(reserve), c.admit_static)
        cold.append(c.admit_cold[0] + pkey + c.admit_cold[1])
        strings += (str(reserve), c.relative_prefix + pkey)
        held.append((c, pkey, reserve))
    keys += counters + throttles + [f"{tag}:rw:{w['id']}" for w in chain.windows]
    header = (len(chain.counted), int(rpm or 0), int(tpm), tokens, loop_max, loop_window)
    enforce = 1 if sets.get("loop_breaker") else 0
    args = [
        req.request_id,
        _HEADER(*header, enforce, enforcer.reservation_ttl_ms, len(chain.windows)),
        b"".join(numbers),
        b"".join([pack_double(int(w["limit"])) for w in chain.windows]),
        req.workspace_id,
        subject,
        " ".join(cold),
        *strings,
    ]
    return chain, keys, args, held


def _reference_settle(req, held, epochs, actual):
    tag = workspace_tag(req.workspace_id)
    keys = [f"{tag}:settled:{req.request_id}", alerts_stream(req.workspace_id), f"{tag}:resv"]
    numbers, cold, per_budget = [pack_double(len(held))], [], []
    cost, count, tokens = actual
    for (c, pkey, reserve), epoch in zip(held, epochs, strict=True):
        used = {MONEY: cost, REQUESTS: count}.get(c.metric, tokens)
        keys.append(c.counter_prefix + pkey)
        numbers += (pack_double(used), c.settle_ladder)
        cold.append(c.settle_cold[0] + pkey + c.settle_cold[1])
        per_budget += (epoch, "-" + str(reserve) if reserve > 0 else "", str(used) if used else "")
    args = [SETTLED_TTL_S, req.workspace_id, req.request_id, "m-1"]
    return keys, [*args, b"".join(numbers), " ".join(cold), *per_budget]


@st.composite
def budgets(draw):
    found = []
    for bid in range(draw(st.integers(0, 8))):
        scope_type, scope_id = draw(st.sampled_from(SCOPES))
        limit = draw(st.sampled_from([0, 1, 50, 10**6, 10**9, 10**12]))
        entry = {
            "id": 500 + bid,
            "scope_type": scope_type,
            "scope_id": scope_id if isinstance(scope_id, int) else 0,
            "metric": draw(st.sampled_from(METRICS)),
            "limit": limit,
            "period": draw(st.sampled_from(["day", "week", "month", "lifetime"])),
            "ladder": draw(st.sampled_from([None, [50, 100], [10, 75, 90, 100]])),
            "throttle_at": draw(st.sampled_from([None, 80])),
            "throttle_rpm": draw(st.sampled_from([None, 0, 6])),
            "hard_stop": draw(st.booleans()),
            "model": draw(st.sampled_from([None, "gpt-4o*", "openai/*", "claude-*"])),
        }
        if isinstance(scope_id, str):
            entry["scope_key"] = scope_id
        if draw(st.booleans()):
            running = draw(st.lists(st.tuples(st.sampled_from(OFFSETS), st.integers(1, 10**9))))
            entry["increases"] = [[BASE + until, nanos] for until, nanos in running]
            entry["base_limit"] = limit
            entry["limit"] = limit + sum(n for until, n in running if BASE + until > BASE)
        found.append(entry)
    return found


def _request(i, data):
    agent = data.draw(st.sampled_from([None, 2]))
    return AdmitRequest(
        request_id=f"req-{i}",
        workspace_id=WS,
        key_id=1,
        member_id=data.draw(st.sampled_from([None, 3])),
        department_id=data.draw(st.sampled_from([None, 4])),
        agent_id=agent,
        provider=data.draw(st.sampled_from(["openai", "anthropic"])),
        model=data.draw(st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-3", "o1"])),
        estimated_input_tokens=data.draw(st.integers(0, 5000)),
        max_output_tokens=data.draw(st.integers(-1, 5000)),
        reserve_nanos=data.draw(st.sampled_from([0, 1, 2, 50, 51, 10**6 + 1, 10**9 + 1])),
        fingerprint=data.draw(st.sampled_from(["", "fp"])),
        session_id=None,
        agent_department_id=data.draw(st.sampled_from([None, 4, 5])) if agent else None,
        properties=data.draw(st.sampled_from([None, {"team": "x"}, {"customer": "c1"}])),
    )


def _summary(chain):
    return (
        [(b["id"], b["limit"], pkey, end) for b, pkey, end in chain.counted],
        [(w["id"], w["limit"]) for w in chain.windows],
        None if chain.over_request_cap is None else chain.over_request_cap["id"],
        None if chain.over_request_cap is None else chain.over_request_cap["limit"],
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(found=budgets(), data=st.data())
def test_cached_chain_gives_the_uncached_keys_and_args(found, data):
    ws = {"workspace_id": WS, "rpm_floor": 500, "budgets": found, "settings": {}}
    pristine = copy.deepcopy(ws)
    key = {"rpm": data.draw(st.sampled_from([None, 50, 1000])), "tpm": None}
    enforcer = Enforcer(None, loader=None)
    zones = st.sampled_from(["UTC", "UTC", "Europe/Paris", "America/New_York"])
    time_zone = data.draw(zones)
    for step, offset in enumerate(data.draw(st.lists(st.sampled_from(OFFSETS), max_size=12))):
        now = BASE + offset + data.draw(st.sampled_from([0, 0, 0.5]))
        if data.draw(st.integers(0, 5)) == 0:
            time_zone = data.draw(zones)
        if step == 0 or data.draw(st.integers(0, 4)) == 0:  # mostly the same chain shape
            shape = _request(step, data)
        req = dataclasses.replace(
            shape,
            request_id=f"req-{step}",
            estimated_input_tokens=data.draw(st.integers(0, 5000)),
            reserve_nanos=data.draw(st.sampled_from([0, 1, 2, 50, 51, 10**6 + 1, 10**9 + 1])),
        )
        actual = (data.draw(st.sampled_from([0, 7, 10**9])), data.draw(st.sampled_from([0, 1])), 3)
        want, keys, args, held = _reference(req, pristine, key, enforcer, time_zone, now)
        chain = chain_for(req, ws, enforcer._periods, time_zone, now)
        assert _summary(chain) == _summary(want)
        if chain.over_request_cap is not None:
            continue
        call = enforcer._admit_call(req, ws, key, chain, now)
        assert (call.keys, call.args) == (keys, args)
        epochs = [f"e{step}.{i}" for i in range(len(held))]
        answer = [b"ok", 5, 1, 0, b"m-1", *(e.encode() for e in epochs)]
        handle = enforcer._admitted(req, call, chain, answer).handle
        cost, count, tokens = actual
        got = settle_call(handle, cost_nanos=cost, count=count, tokens=tokens)
        assert got == _reference_settle(req, held, epochs, actual)


def test_increase_lapses_at_its_until_even_with_a_cached_frame():
    budget = {
        "id": 1,
        "scope_type": "workspace",
        "scope_id": WS,
        "metric": "usd",
        "limit": 300,
        "base_limit": 100,
        "increases": [[BASE + 10, 200]],
        "period": "lifetime",
    }
    ws = {"workspace_id": WS, "budgets": [budget]}
    req = AdmitRequest("r", WS, 1, None, None, None, "openai", "gpt-4o", 1, 1, 150, "", None)
    periods = PeriodCache()
    assert chain_for(req, ws, periods, "UTC", BASE).counted[0][0]["limit"] == 300
    assert chain_for(req, ws, periods, "UTC", BASE + 9.9).counted[0][0]["limit"] == 300
    assert chain_for(req, ws, periods, "UTC", BASE + 10).counted[0][0]["limit"] == 100


def test_plans_per_snapshot_are_bounded():
    ws = {"workspace_id": WS, "budgets": []}
    periods = PeriodCache()
    for key_id in range(3 * PLANS_PER_SNAPSHOT):
        req = AdmitRequest("r", WS, key_id, None, None, None, "openai", "m", 1, 1, 1, "", None)
        chain_for(req, ws, periods, "UTC", BASE)
    assert 0 < len(ws["_alephant_chain_plans"]) <= PLANS_PER_SNAPSHOT
