"""Enforcement overhead: `Enforcer.admit` + `settle` with budgets on the full chain (key, agent,
member, department, workspace) and the key's rate cap, versus the same calls with enforcement
off, in the same run against the same Redis. `run() -> list[dict]` rows for `make bench`;
`python -m bench.enforcement` prints them.

Each call: one EVALSHA for admit, one for settle (the gateway does both per request).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from gateway.enforcement import NANOS_PER_USD, AdmitRequest, Enforcer

WORKSPACE_ID = 2_000_000_000  # far from real ids; its keys are removed afterwards


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
        t0 = time.perf_counter()
        admission = await enforcer.admit(req, snapshot, key)
        await enforcer.settle(admission, cost_nanos=3_000_000, tokens=700)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples, (time.process_time() - cpu0) * 1000 / calls


async def _run(calls: int) -> list[dict]:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0")
    client = aioredis.Redis.from_url(url)
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
        keys = [
            k async for k in client.scan_iter(match=f"alephant:{{w{WORKSPACE_ID}}}:*", count=1000)
        ]
        for i in range(0, len(keys), 500):
            await client.delete(*keys[i : i + 500])
        await client.aclose()


def run(calls: int = 3000) -> list[dict]:
    return asyncio.run(_run(calls))


if __name__ == "__main__":
    from alephant.env import load_dotenv

    load_dotenv()
    for row in run():
        print(row)
