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


def run_gateway(seconds: float = 4.0, concurrency: tuple[int, ...] = (1, 64)) -> list[dict]:
    """The same comparison through real gateway processes (uvicorn, one worker each) on `make
    bench`'s stack (`wrk`, nginx upstream, private Redis): one gateway with enforcement off, one
    with it on, the same key with 5 budgets + the rate cap; CPU per call over each gateway
    worker plus the Redis (one cell runs at a time)."""
    from alephant.env import load_dotenv
    from bench.__main__ import WORKSPACE_ID as BENCH_WS
    from bench.__main__ import body, uvicorn
    from bench.mockstack import MockStack
    from bench.seed import seed_key
    from bench.wrk import run_wrk
    from tests.gateway.servers import free_port, wait_http

    load_dotenv()
    stack = MockStack().start()
    env = dict(os.environ, REDIS_URL=stack.redis_url, PYTHONDONTWRITEBYTECODE="1")
    env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "1"
    ports = {"enforcement off": free_port(), "5 budgets + rate cap": free_port()}
    procs = {
        name: uvicorn("gateway.asgi:application", port, dict(env, ALEPHANT_ENFORCEMENT=on))
        for (name, port), on in zip(ports.items(), ("0", "1"), strict=True)
    }
    rows: list[dict] = []
    try:
        for name, proc in procs.items():
            wait_http(f"http://127.0.0.1:{ports[name]}/v1/models", timeout=90, proc=proc)
        secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
        key = seed_key(
            redis_url=stack.redis_url, key_hash_secret=secret, ws_id=BENCH_WS + 77,
            base_url=f"{stack.upstream}/json/v1", budgets=True,
        )  # fmt: skip
        headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
        for c in concurrency:
            for name, proc in procs.items():
                assert proc.proc is not None
                cell = run_wrk(
                    f"http://127.0.0.1:{ports[name]}/v1/chat/completions", body=body("json"),
                    headers=headers, connections=c, seconds=seconds,
                    cpu_pids=[proc.proc.pid, stack.redis_pid],
                )  # fmt: skip
                rows.append(
                    {
                        "bench": "gateway /v1/chat/completions", "case": name, "concurrency": c,
                        "rps": round(cell.rps), "p50_ms": round(cell.p50_ms, 3),
                        "cpu_ms_per_call": round(cell.cpu_ms_per_call, 3), "errors": cell.errors,
                    }
                )  # fmt: skip
        return rows
    finally:
        for proc in procs.values():
            proc.kill()
        stack.stop()


if __name__ == "__main__":
    import sys

    from alephant.env import load_dotenv

    load_dotenv()
    for row in run():
        print(row)
    if "--gateway" in sys.argv:
        for row in run_gateway():
            print(row)
