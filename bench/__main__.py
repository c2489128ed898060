"""`make bench` (`python -m bench`): direct to the simulator vs a bare pass-through proxy vs the
Alephant full path (auth, rate cap, costing, usage queue), and the same gateway with 5 money
budgets on the key's chain (`5budgets`), non-streaming and streaming, at concurrency 1 and 64.
Reports RPS, p50, p99 and server CPU per request, with ratios, in one run.

Each server is one uvicorn worker (uvloop + httptools). The gateway reads its key and workspace
snapshots from a Redis database of its own (`ALEPHANT_BENCH_REDIS_DB`, default 11): the bench
writes them there directly (sealed with the configured master key), so it touches no Postgres
rows. The load generator is an aiohttp client in this process. Bounded: about a minute.
`BENCH_APP=gateway.asgi:application` benchmarks the standalone gateway app instead of the
dispatcher; `ALEPHANT_ENFORCEMENT=0` shows what the enforcement script costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass

import aiohttp
import orjson

from alephant.env import load_dotenv
from tests.gateway.servers import Proc, free_port, wait_http

WORKSPACE_ID = 987_654_321
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children that were waited for (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


@dataclass
class Result:
    target: str
    mode: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict, stream: bool
) -> bool:
    async with session.post(url, data=body, headers=headers) as resp:
        if stream:
            async for _chunk in resp.content.iter_any():
                pass
        else:
            await resp.read()
        return resp.status == 200


async def run_cell(
    target: str, url: str, headers: dict, stream: bool, concurrency: int, seconds: float, pid: int
) -> Result:
    payload = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "benchmark me"}],
        "max_tokens": 16,
    }
    if stream:
        payload["stream"] = True
    body = orjson.dumps(payload)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(min(concurrency, 8)):  # warm the connection pools
            await one(session, url, body, headers, stream)
        stop_at = time.perf_counter() + seconds
        cpu0 = cpu_seconds(pid)
        start = time.perf_counter()

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t = time.perf_counter()
                try:
                    ok = await one(session, url, body, headers, stream)
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(pid) - cpu0
    latencies.sort()
    n = len(latencies)
    return Result(
        target,
        "stream" if stream else "json",
        concurrency,
        n,
        errors,
        elapsed,
        p50_ms=statistics.median(latencies) * 1000 if n else float("nan"),
        p99_ms=latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        cpu_ms_per_req=cpu * 1000 / n if n else float("nan"),
    )


BUDGET_SCOPES = (("key", 1), ("agent", 1), ("member", 1), ("department", 1))


def seed_snapshots(
    redis_url: str, key_hash_secret: str, sim_url: str, *, budgets: bool = False
) -> str:
    """Write a key and workspace snapshot for the bench gateway; returns the raw key.

    `budgets`: a workspace of its own (WORKSPACE_ID + 1) with a money budget on every scope of
    the chain (key, agent, member, department, workspace: 5), counters pre-seeded (lifetime,
    effectively unlimited), so the run shows the full path with budget enforcement."""
    import redis

    from core import vault
    from core.keyhash import generate_key, hash_key

    ws_id = WORKSPACE_ID + 1 if budgets else WORKSPACE_ID
    raw, prefix = generate_key()
    wrapped, version = vault.wrap_data_key(ws_id, vault.new_data_key())
    enc = vault.seal_secret(ws_id, "sk-bench-upstream", wrapped_dek=wrapped, key_version=version)
    enc.setdefault("wrapped_dek", wrapped)
    enc.setdefault("key_version", version)
    key = {
        "v": 1,
        "workspace_id": ws_id,
        "key_id": 1,
        "prefix": prefix,
        "member_id": 1,
        "department_id": 1 if budgets else None,
        "agent_id": 1 if budgets else None,
        "member_agents": {},
        "expires_at": None,
        "revoked": False,
        "allowed_models": None,
        "rpm": 2_000_000_000,
        "tpm": None,
    }
    workspace = {
        "v": 1,
        "workspace_id": ws_id,
        "time_zone": "UTC",
        # The floor bounds every key's rpm (a key only narrows it): lifted for the bench.
        "rpm_floor": 2_000_000_000,
        "credentials": [
            {
                "id": 1,
                "provider": "openai",
                "name": "sim",
                "base_url": sim_url + "/v1",
                "api_version": None,
                "organization": None,
                "timeout_s": 60,
                "enc": enc,
            }
        ],
        "price_overrides": [],
        "budgets": [],
        "settings": {},
    }
    client = redis.Redis.from_url(redis_url)
    budget_list: list[dict] = []
    workspace["budgets"] = budget_list
    if budgets:
        for i, (scope_type, scope_id) in enumerate((*BUDGET_SCOPES, ("workspace", ws_id))):
            budget_list.append(
                {
                    "id": 900 + i,
                    "scope_type": scope_type,
                    "scope_id": scope_id,
                    "metric": "usd",
                    "limit": 1_000_000 * 1_000_000_000,  # $1M: never refuses
                    "period": "lifetime",
                    "ladder": [50, 75, 90, 100],
                    "throttle_at": None,
                    "throttle_rpm": None,
                    "hard_stop": True,
                    "model": None,
                }
            )
            client.hset(
                f"alephant:{{w{ws_id}}}:b:{900 + i}:life",
                mapping={"init": "bench", "spent": 0, "reserved": 0},
            )
    client.set(f"alephant:gk:{hash_key(raw, key_hash_secret)}", orjson.dumps(key))
    client.set(f"alephant:ws:{ws_id}", orjson.dumps(workspace))
    client.close()
    return raw


def uvicorn(app: str, port: int, env: dict) -> Proc:
    return Proc(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--timeout-graceful-shutdown",
            "1",
        ],
        env,
        app,
    ).start()


def print_table(results: list[Result]) -> None:
    by = {(r.target, r.mode, r.concurrency): r for r in results}
    head = (
        f"{'mode':<7}{'c':>4}  {'target':<10}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'cpu ms/req':>12}{'errors':>8}{'rps/bare':>10}{'p50 +ms vs direct':>19}"
    )
    print("\n" + head + "\n" + "-" * len(head))
    for r in results:
        bare = by.get(("bare", r.mode, r.concurrency))
        direct = by.get(("direct", r.mode, r.concurrency))
        ratio = f"{r.rps / bare.rps:.2f}" if bare and bare.rps else "-"
        added = f"{r.p50_ms - direct.p50_ms:+.2f}" if direct and r.target != "direct" else "-"
        print(
            f"{r.mode:<7}{r.concurrency:>4}  {r.target:<10}{r.rps:>9.0f}{r.p50_ms:>9.2f}"
            f"{r.p99_ms:>9.2f}{r.cpu_ms_per_req:>12.3f}{r.errors:>8}{ratio:>10}{added:>19}"
        )
    print()


async def bench(args: argparse.Namespace) -> list[Result]:
    load_dotenv()
    base_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0")
    redis_url = re.sub(r"/\d*$", "", base_redis.rstrip("/")) + f"/{args.redis_db}"
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONDONTWRITEBYTECODE="1")
    secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
    sim_port, bare_port, gw_port = free_port(), free_port(), free_port()
    sim = Proc(
        [sys.executable, "-m", "devtools.simulator", "--port", str(sim_port)], env, "sim"
    ).start()
    sim_url = f"http://127.0.0.1:{sim_port}"
    bare = uvicorn("bench.baseline:application", bare_port, dict(env, BENCH_UPSTREAM=sim_url))
    gateway = uvicorn(os.environ.get("BENCH_APP", "alephant.asgi:application"), gw_port, env)
    procs = [sim, bare, gateway]
    try:
        wait_http(sim_url + "/_sim/stats", proc=sim)
        wait_http(f"http://127.0.0.1:{bare_port}/", proc=bare)
        wait_http(f"http://127.0.0.1:{gw_port}/v1/models", timeout=90, proc=gateway)
        raw_key = seed_snapshots(redis_url, secret, sim_url)
        budgeted_key = seed_snapshots(redis_url, secret, sim_url, budgets=True)
        targets = {
            "direct": (
                sim_url + "/v1/chat/completions",
                {"authorization": "Bearer sk-direct"},
                sim,
            ),
            "bare": (f"http://127.0.0.1:{bare_port}/v1/chat/completions", {}, bare),
            "alephant": (
                f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                {"authorization": f"Bearer {raw_key}"},
                gateway,
            ),
            # The same gateway, 5 money budgets on the key's chain (admit reserves on all five,
            # settle + usage event in one script call).
            "5budgets": (
                f"http://127.0.0.1:{gw_port}/v1/chat/completions",
                {"authorization": f"Bearer {budgeted_key}"},
                gateway,
            ),
        }
        results = []
        for stream in (False, True):
            for concurrency in args.concurrency:
                for name, (url, headers, proc) in targets.items():
                    assert proc.proc is not None
                    result = await run_cell(
                        name,
                        url,
                        {"content-type": "application/json", **headers},
                        stream,
                        concurrency,
                        args.seconds,
                        proc.proc.pid,
                    )
                    results.append(result)
                    print(
                        f"  {result.mode:<6} c={concurrency:<3} {name:<9} {result.rps:8.0f} rps"
                        f"  p50 {result.p50_ms:6.2f} ms",
                        flush=True,
                    )
        return results
    finally:
        for proc in procs:
            proc.kill()
        try:
            import redis

            client = redis.Redis.from_url(redis_url)
            client.delete("alephant:usage")  # bench calls are not real spend
            for key in client.scan_iter(f"alephant:{{w{WORKSPACE_ID + 1}}}:*", count=1000):
                client.delete(key)
            client.close()
        except Exception:  # noqa: S110 - cleanup is best effort
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64])
    parser.add_argument(
        "--redis-db", type=int, default=int(os.environ.get("ALEPHANT_BENCH_REDIS_DB", "11"))
    )
    args = parser.parse_args()
    started = time.time()
    results = asyncio.run(bench(args))
    print_table(results)
    print(
        f"total {time.time() - started:.0f} s; one uvicorn worker per server, load generator "
        "in-process; 2 shared cores, so absolute numbers move with other load."
    )


if __name__ == "__main__":
    main()
