"""Enforcement overhead: `Enforcer.admit` + `settle` with budgets on the full chain (key, agent,
member, department, workspace) and the key's rate cap, versus the same calls with enforcement
off, in the same run against the same Redis. `run() -> list[dict]` rows for `make bench`;
`python -m bench.enforcement` prints them.

Each call: one EVALSHA for admit, one for settle carrying the usage event (the gateway does both
per request; with enforcement off the event is its own XADD), on the gateway's `RespClient`.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from core.money import NANOS_PER_USD
from gateway.hotpath.admission import AdmitRequest
from gateway.hotpath.enforcer import Enforcer
from gateway.hotpath.resp import RespClient

WORKSPACE_ID = 2_000_000_000  # far from real ids; its keys are removed afterwards
USAGE = "alephant:usage:bench-enforcement"  # not the real stream: no ledger writer reads it


def _snapshot() -> dict:
    chain = [
        ("key", 11),
        ("agent", 12),
        ("member", 13),
        ("department", 14),
        ("workspace", WORKSPACE_ID),
    ]
    budgets = [
        {
            "id": 9_000_000 + i,
            "scope_type": scope,
            "scope_id": sid,
            "metric": "usd",
            "limit": 10**6 * NANOS_PER_USD,
            "period": period,
            "ladder": [50, 75, 90, 100],
            "throttle_at": 90,
            "throttle_rpm": 10,
            "hard_stop": True,
            "model": None,
        }
        for i, ((scope, sid), period) in enumerate(
            zip(chain, ["day", "week", "month", "month", "lifetime"], strict=True)
        )
    ]
    return {
        "v": 1,
        "workspace_id": WORKSPACE_ID,
        "time_zone": "Europe/Paris",
        "rpm_floor": 10**9,
        "budgets": budgets,
        "settings": {},
    }


async def _zero(workspace_id, items):
    return [0 for _ in items]


async def _measure(enforcer: Enforcer, snapshot: dict, calls: int) -> tuple[list[float], float]:
    key = {"rpm": None, "tpm": None}
    samples = []
    cpu0 = time.process_time()
    for i in range(calls):
        req = AdmitRequest(
            request_id=f"bench-{uuid.uuid4().hex}",
            workspace_id=WORKSPACE_ID,
            key_id=11,
            member_id=13,
            department_id=14,
            agent_id=12,
            provider="openai",
            model="gpt-4o",
            estimated_input_tokens=500,
            max_output_tokens=256,
            reserve_nanos=5_000_000,
            fingerprint=f"fp{i}",
            session_id=None,
        )
        event = b'{"request_id":"%s"}' % req.request_id.encode()
        t0 = time.perf_counter()
        admission = await enforcer.admit(req, snapshot, key)
        # As the gateway does: the usage event rides in the settle script; with enforcement off
        # (no script) it is its own XADD.
        if not await enforcer.settle(
            admission, cost_nanos=3_000_000, tokens=700, usage=[event], usage_stream=USAGE
        ):
            await enforcer.redis.xadd(USAGE, {"e": event})
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, (time.process_time() - cpu0) * 1000 / calls


async def _run(calls: int) -> list[dict]:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0")
    # The gateway's request-path client (one pipelined connection), as in production.
    client = RespClient.from_url(url)
    snapshot = _snapshot()
    on = Enforcer(client, loader=_zero)
    off = Enforcer(client, loader=_zero, enabled=False)
    try:
        await _measure(on, snapshot, 200)  # warm up: scripts loaded, counters seeded
        rows: list[dict[str, Any]] = []
        results = {}
        for name, enforcer in (("enforcement off", off), ("5 budgets + rate cap", on)):
            samples, cpu = await _measure(enforcer, snapshot, calls)
            samples.sort()
            results[name] = samples
            rows.append(
                {
                    "bench": "enforcer admit+settle",
                    "case": name,
                    "calls": calls,
                    "p50_ms": round(statistics.median(samples), 3),
                    "p99_ms": round(samples[int(len(samples) * 0.99) - 1], 3),
                    "cpu_ms_per_call": round(cpu, 3),
                }
            )
        # The floor any Redis-backed enforcement pays: two round trips of a trivial script.
        sha = await client.script_load("return 1")
        floor = []
        cpu0 = time.process_time()
        for _ in range(calls):
            t0 = time.perf_counter()
            await client.evalsha(sha, 0)
            await client.evalsha(sha, 0)
            floor.append((time.perf_counter() - t0) * 1000)
        floor.sort()
        rows.append(
            {
                "bench": "enforcer admit+settle",
                "case": "floor: 2 x trivial EVALSHA",
                "calls": calls,
                "p50_ms": round(statistics.median(floor), 3),
                "p99_ms": round(floor[int(len(floor) * 0.99) - 1], 3),
                "cpu_ms_per_call": round((time.process_time() - cpu0) * 1000 / calls, 3),
            }
        )
        overhead = statistics.median(results["5 budgets + rate cap"]) - statistics.median(
            results["enforcement off"]
        )
        rows.append(
            {
                "bench": "enforcer admit+settle",
                "case": "overhead p50",
                "calls": calls,
                "p50_ms": round(overhead, 3),
                "p99_ms": None,
                "cpu_ms_per_call": round(
                    rows[1]["cpu_ms_per_call"] - rows[0]["cpu_ms_per_call"], 3
                ),
            }
        )
        return rows
    finally:
        await client.aclose()
        admin = aioredis.Redis.from_url(url)
        keys = [
            k async for k in admin.scan_iter(match=f"alephant:{{w{WORKSPACE_ID}}}:*", count=1000)
        ]
        for i in range(0, len(keys), 500):
            await admin.delete(*keys[i : i + 500])
        await admin.delete(USAGE)
        await admin.aclose()


def run(calls: int = 3000) -> list[dict]:
    return asyncio.run(_run(calls))


# --- through the real gateway -------------------------------------------------------------


def _seed_budgets(redis_url: str, workspace_id: int) -> None:
    """Put 5 budgets on the bench key's chain (key, member, workspace x3 with different periods)
    into the bench workspace snapshot, and seed their counters (no Postgres needed)."""
    import json
    import time as _time

    import redis

    from core.periods import period_bounds

    client = redis.Redis.from_url(redis_url)
    snapshot = json.loads(client.get(f"alephant:ws:{workspace_id}"))
    scopes = [
        ("key", 1, "day"),
        ("member", 1, "month"),
        ("workspace", workspace_id, "month"),
        ("workspace", workspace_id, "week"),
        ("workspace", workspace_id, "lifetime"),
    ]
    budgets = []
    for i, (scope, sid, period) in enumerate(scopes):
        bid = 8_000_000 + i
        budgets.append(
            {
                "id": bid,
                "scope_type": scope,
                "scope_id": sid,
                "metric": "usd",
                "limit": 10**6 * NANOS_PER_USD,
                "period": period,
                "ladder": [50, 75, 90, 100],
                "throttle_at": 90,
                "throttle_rpm": 10,
                "hard_stop": True,
                "model": None,
            }
        )
        key, _s, _e = period_bounds(period, snapshot.get("time_zone") or "UTC", _time.time())
        client.hset(
            f"alephant:{{w{workspace_id}}}:b:{bid}:{key}",
            mapping={"init": "bench", "spent": 0, "reserved": 0},
        )
    snapshot["budgets"] = budgets
    client.set(f"alephant:ws:{workspace_id}", json.dumps(snapshot))
    client.close()


async def _gateway_cells(seconds: float, concurrency: list[int]) -> list[dict]:
    import re

    from alephant.env import load_dotenv
    from bench.__main__ import WORKSPACE_ID as BENCH_WS
    from bench.__main__ import run_cell, seed_snapshots, uvicorn
    from tests.gateway.servers import Proc, free_port, wait_http

    load_dotenv()
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0")
    redis_url = (
        re.sub(r"/\d*$", "", base.rstrip("/"))
        + "/"
        + os.environ.get("ALEPHANT_BENCH_REDIS_DB", "11")
    )
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONDONTWRITEBYTECODE="1")
    secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
    sim_port, on_port, off_port = free_port(), free_port(), free_port()
    import sys

    sim = Proc(
        [sys.executable, "-m", "devtools.simulator", "--port", str(sim_port)], env, "sim"
    ).start()
    sim_url = f"http://127.0.0.1:{sim_port}"
    on = uvicorn("alephant.asgi:application", on_port, env)
    off = uvicorn("alephant.asgi:application", off_port, dict(env, ALEPHANT_ENFORCEMENT="0"))
    rows = []
    try:
        wait_http(sim_url + "/_sim/stats", proc=sim)
        for port, proc in ((on_port, on), (off_port, off)):
            wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=90, proc=proc)
        raw = seed_snapshots(redis_url, secret, sim_url)
        _seed_budgets(redis_url, BENCH_WS)
        await asyncio.sleep(1.2)  # the gateways' snapshot cache
        headers = {"content-type": "application/json", "authorization": f"Bearer {raw}"}
        results = {}
        for c in concurrency:
            for name, port, proc in (
                ("enforcement off", off_port, off),
                ("5 budgets + rate cap", on_port, on),
            ):
                r = await run_cell(
                    name,
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    headers,
                    False,
                    c,
                    seconds,
                    proc.proc.pid,
                )
                results[(name, c)] = r
                rows.append(
                    {
                        "bench": "gateway /v1/chat/completions",
                        "case": name,
                        "concurrency": c,
                        "rps": round(r.rps),
                        "p50_ms": round(r.p50_ms, 3),
                        "p99_ms": round(r.p99_ms, 3),
                        "cpu_ms_per_req": round(r.cpu_ms_per_req, 3),
                        "errors": r.errors,
                    }
                )
            a, b = results[("5 budgets + rate cap", c)], results[("enforcement off", c)]
            rows.append(
                {
                    "bench": "gateway /v1/chat/completions",
                    "case": "enforcement overhead",
                    "concurrency": c,
                    "p50_ms": round(a.p50_ms - b.p50_ms, 3),
                    "cpu_ms_per_req": round(a.cpu_ms_per_req - b.cpu_ms_per_req, 3),
                }
            )
        return rows
    finally:
        for proc in (on, off, sim):
            proc.kill()
        import redis

        client = redis.Redis.from_url(redis_url)
        client.delete("alephant:usage")  # bench calls are not real spend
        for key in client.scan_iter(match=f"alephant:{{w{BENCH_WS}}}:*", count=1000):
            client.delete(key)
        client.close()


def run_gateway(seconds: float = 4.0, concurrency: tuple[int, ...] = (1, 64)) -> list[dict]:
    """The same comparison through a real gateway process (uvicorn) and the simulator."""
    return asyncio.run(_gateway_cells(seconds, list(concurrency)))


if __name__ == "__main__":
    import sys

    from alephant.env import load_dotenv

    load_dotenv()
    for row in run():
        print(row)
    if "--gateway" in sys.argv:
        for row in run_gateway():
            print(row)
