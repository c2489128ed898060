"""`python -m bench.durability`: what the stricter durability settings cost per call.

    python -m bench.durability [--seconds 5] [--rounds 3]
    python -m bench.durability --confirm     # one confirm alone: master + replica, no gateway

Three settings on one Redis master (private, AOF on, in a temporary directory on the local disk)
with one replica, behind the nginx mock of `make bench` (`bench/mockstack.py`):

* `off`: the default: `appendfsync everysec`, `ALEPHANT_REDIS_WAIT_REPLICAS=0`;
* `wait1`: `appendfsync everysec`, `ALEPHANT_REDIS_WAIT_REPLICAS=1` (a second gateway process,
  same Redis): every call's settle is acknowledged by the replica before its answer completes;
* `always`: `appendfsync always` (set with CONFIG SET between cells), no WAIT.

The key carries 5 money budgets + the rate cap (the settle script runs on every call). `wrk`
(one thread) drives each cell: c=1 (p50, the latency one caller sees) and c=32 (RPS and CPU per
call: utime + stime of the gateway process tree + the master `redis-server`; the replica's CPU is
printed apart). Rounds alternate the order of the settings; figures are medians, with ratios to
`off` from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import redis
from redis.asyncio import Redis as aioredis

from alephant.env import load_dotenv
from bench.__main__ import body, uvicorn
from bench.mockstack import MockStack, ensure_tool
from bench.seed import seed_key
from bench.wrk import Cell, cpu_seconds, run_wrk
from gateway.hotpath.replication import ReplicaWait
from gateway.hotpath.resp import RespClient
from tests.gateway.servers import Proc, free_port, wait_http

SETTINGS = ("off", "wait1", "always")
WORKSPACE_ID = 987_600_001
CELLS = (1, 32)


class Rig:
    """The mock upstream, the master (the mock's redis-server, AOF switched on), a replica, and
    two gateways: WAIT off and WAIT 1."""

    def __init__(self) -> None:
        load_dotenv()
        self.mock = MockStack().start()
        self.master = redis.Redis.from_url(self.mock.redis_url)
        self.master.config_set("appendonly", "yes")
        self.master.config_set("appendfsync", "everysec")
        replica_port = free_port()
        cmd = ["redis-server", "--port", str(replica_port), "--bind", "127.0.0.1", "--save", ""]
        cmd += ["--appendonly", "no", "--dir", str(self.mock.tmp)]
        cmd += ["--replicaof", "127.0.0.1", str(self.mock.redis_port)]
        self.replica = Proc(cmd, name="replica").start()
        replica = redis.Redis(port=replica_port)
        deadline = time.time() + 20
        while _link(replica) != "up":
            if time.time() > deadline:
                raise TimeoutError("the replica never synced")
            time.sleep(0.1)
        env = dict(os.environ, REDIS_URL=self.mock.redis_url, PYTHONDONTWRITEBYTECODE="1")
        env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "1"
        env["ALEPHANT_USAGE_SPOOL_DIR"] = str(self.mock.tmp / "spool")
        self.ports = {"off": free_port(), "wait1": free_port()}
        self.gateways = {
            "off": uvicorn("gateway.asgi:application", self.ports["off"], env),
            "wait1": uvicorn(
                "gateway.asgi:application",
                self.ports["wait1"],
                dict(env, ALEPHANT_REDIS_WAIT_REPLICAS="1", ALEPHANT_REDIS_WAIT_TIMEOUT_MS="1000"),
            ),
        }
        for name, proc in self.gateways.items():
            wait_http(f"http://127.0.0.1:{self.ports[name]}/v1/models", timeout=90, proc=proc)
        secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
        self.key = seed_key(
            redis_url=self.mock.redis_url, key_hash_secret=secret, ws_id=WORKSPACE_ID,
            base_url=f"{self.mock.upstream}/json/v1", budgets=True,
        )  # fmt: skip

    def cell(self, setting: str, conns: int, seconds: float) -> tuple[Cell, float]:
        """One wrk run; also the replica's CPU seconds per call."""
        gateway = "wait1" if setting == "wait1" else "off"
        self.master.config_set("appendfsync", "always" if setting == "always" else "everysec")
        pids = [_pid(self.gateways[gateway]), self.mock.redis_pid]
        replica0 = cpu_seconds([_pid(self.replica)])
        cell = run_wrk(
            f"http://127.0.0.1:{self.ports[gateway]}/v1/chat/completions",
            body=body("json"),
            headers={"content-type": "application/json", "authorization": f"Bearer {self.key}"},
            connections=conns,
            seconds=seconds,
            cpu_pids=pids,
        )
        replica = cpu_seconds([_pid(self.replica)]) - replica0
        return cell, replica * 1000 / max(1, cell.requests)

    def stop(self) -> None:
        for proc in self.gateways.values():
            proc.kill()
        self.replica.kill()
        self.mock.stop()


def _link(client: redis.Redis) -> str:
    try:
        return client.info("replication").get("master_link_status", "")
    except redis.RedisError:
        return ""


def _pid(proc: Proc) -> int:
    assert proc.proc is not None
    return proc.proc.pid


def measure(rig: Rig, rounds: int, seconds: float) -> dict[tuple[str, int], list]:
    for setting in SETTINGS:  # warm pools, snapshot and script caches
        rig.cell(setting, 32, 1)
    cells: dict[tuple[str, int], list] = {}
    for round_no in range(rounds):
        order = SETTINGS if round_no % 2 == 0 else tuple(reversed(SETTINGS))
        for conns in CELLS:
            for setting in order:
                cell, replica_ms = rig.cell(setting, conns, seconds)
                cells.setdefault((setting, conns), []).append((cell, replica_ms))
                print(
                    f"  round {round_no + 1} c={conns:<3} {setting:<7}{cell.rps:8.0f} rps  "
                    f"p50 {cell.p50_ms:6.2f} ms  cpu {cell.cpu_ms_per_call:.3f} ms/call  "
                    f"errors {cell.errors}",
                    flush=True,
                )
    return cells


def table(cells: dict[tuple[str, int], list]) -> str:
    def med(setting: str, conns: int, attr: str) -> float:
        return statistics.median(getattr(c, attr) for c, _r in cells[setting, conns])

    def replica(setting: str) -> float:
        return statistics.median(r for _c, r in cells[setting, 32])

    base_p50, base_cpu = med("off", 1, "p50_ms"), med("off", 32, "cpu_ms_per_call")
    base_cpu1 = med("off", 1, "cpu_ms_per_call")
    base_rps = med("off", 32, "rps")
    lines = [
        "| setting | p50 c=1 | added | CPU ms/call c=1 | vs off | CPU ms/call c=32 | vs off "
        "| RPS c=32 | vs off | replica CPU ms/call c=32 | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in SETTINGS:
        p50, cpu = med(setting, 1, "p50_ms"), med(setting, 32, "cpu_ms_per_call")
        cpu1 = med(setting, 1, "cpu_ms_per_call")
        rps = med(setting, 32, "rps")
        errors = sum(
            c.errors for key, group in cells.items() if key[0] == setting for c, _ in group
        )
        lines.append(
            f"| {setting} | {p50:.2f} ms | {p50 - base_p50:+.2f} ms | {cpu1:.3f} "
            f"| {cpu1 / base_cpu1:.2f}x | {cpu:.3f} "
            f"| {cpu / base_cpu:.2f}x | {rps:,.0f} | {rps / base_rps:.0%} "
            f"| {replica(setting):.3f} | {errors} |"
        )
    return "\n".join(lines)


def _redis_cpu(port: int) -> float:
    info = redis.Redis(port=port).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def _confirms(port: int, replica: int, kind: str, n: int = 2000) -> str:
    """`n` XADDs in a row, each followed by `ReplicaWait.confirm` (unless `kind` is "xadd")."""
    writer = RespClient(port=port)
    client = RespClient(port=port, timeout_s=10) if kind == "respclient" else aioredis(port=port)
    waiter = ReplicaWait(client, None, replicas=1, timeout_ms=2000)
    event = [b'{"request_id":"bench"}']

    async def one() -> None:
        await writer.xadd("alephant:bench:confirm", {"e": event[0]})
        if kind != "xadd":
            assert await waiter.confirm(event, request_id="bench"), "the replica did not ack"

    for _ in range(100):
        await one()
    cpu0, master0, replica0 = time.process_time(), _redis_cpu(port), _redis_cpu(replica)
    wall0 = time.perf_counter()
    for _ in range(n):
        await one()
    wall = (time.perf_counter() - wall0) * 1000 / n
    cpu = (time.process_time() - cpu0) * 1000 / n
    master = (_redis_cpu(port) - master0) * 1000 / n
    replica_cpu = (_redis_cpu(replica) - replica0) * 1000 / n
    await writer.aclose()
    await client.aclose()
    return f"| {kind} | {cpu:.3f} | {master:.3f} | {replica_cpu:.3f} | {wall:.3f} |"


def confirm_cost() -> None:
    """The waiter alone: client, master and replica CPU and wall time per call, vs an XADD."""
    mock = MockStack().start()  # its redis-server is the master
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    cmd += ["--dir", str(mock.tmp), "--replicaof", "127.0.0.1", str(mock.redis_port)]
    replica = Proc(cmd, name="replica").start()
    try:
        deadline = time.time() + 20
        while _link(redis.Redis(port=port)) != "up":
            if time.time() > deadline:
                raise TimeoutError("the replica never synced")
            time.sleep(0.1)
        print("| per call | client CPU ms | master CPU ms | replica CPU ms | wall ms |")
        print("|---|---|---|---|---|")
        for kind in ("xadd", "redis-py", "respclient") * 2:
            print(asyncio.run(_confirms(mock.redis_port, port, kind)), flush=True)
    finally:
        replica.kill()
        mock.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--confirm", action="store_true", help="the waiter alone")
    args = parser.parse_args()
    if args.confirm:
        confirm_cost()
        return
    ensure_tool("wrk", "wrk")
    load0 = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    rig = Rig()
    try:
        cells = measure(rig, args.rounds, args.seconds)
    finally:
        rig.stop()
    load1 = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print("\n" + table(cells))
    print(
        f"\n`python -m bench.durability`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, load average {load0} at the start and {load1} at the end; "
        f"medians of {args.rounds} alternating rounds of {args.seconds:g} s cells.",
    )


if __name__ == "__main__":
    main()
