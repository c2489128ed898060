"""What the Redis Cluster client costs on the request path: the per-call script (EVALSHA of a
counter bump + XADD of a 200-byte usage event, keys of one shard) through the gateway's batcher,
on `RespClient` against one server versus redis-py's cluster client (`core.redisclients`)
against a 3-master cluster, at concurrency 1 and 64. Starts its own Debian `redis-server`
processes on free loopback ports in a temporary directory and stops them after.

    python -m bench.redis_cluster
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

# The cluster client is chosen at import from the environment: this process is the cluster side.
os.environ["ALEPHANT_REDIS_CLUSTER"] = "1"

from core.redisclients import async_client
from gateway.hotpath.resp import RespClient
from gateway.hotpath.scripts import Batcher, Script

SCRIPT = Script(
    "redis.call('HINCRBY', KEYS[1], 'spent', 1) "
    "redis.call('XADD', KEYS[2], '*', 'e', ARGV[1]) return 1"
)
CALLS = 3000
CREATE = ("--cluster-replicas", "0", "--cluster-yes")


def _port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port <= 55535:  # the cluster bus listens on port + 10000
            return port


def _server(directory: Path, port: int, *extra: str) -> subprocess.Popen:
    node = directory / str(port)
    node.mkdir()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node)]
    return subprocess.Popen([*cmd, "--save", "", *extra], stdout=subprocess.DEVNULL)


async def _measure(client: Any, concurrency: int) -> tuple[float, float]:
    batcher = Batcher(client)

    async def one(i: int) -> None:
        tag = f"{{s{i % 16}}}"
        keys = [f"alephant:{tag}:w1:bench", f"alephant:usage:bench:{tag}"]
        await batcher.call(SCRIPT, keys, ["x" * 200])

    for i in range(200):  # warm up: connections, slot map, script cache
        await one(i)
    gate = asyncio.Semaphore(concurrency)

    async def guarded(i: int) -> None:
        async with gate:
            await one(i)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(guarded(i) for i in range(CALLS)))
    return (
        (time.process_time() - cpu) / CALLS * 1e6,
        (time.perf_counter() - wall) / CALLS * 1e6,
    )


async def _compare(single_port: int, seed_port: int) -> list[dict]:
    single = RespClient("127.0.0.1", single_port)
    cluster = async_client(f"redis://127.0.0.1:{seed_port}")
    rows = []
    for concurrency in (1, 64):
        for name, client in (("RespClient, one server", single), ("cluster client", cluster)):
            cpu_us, wall_us = await _measure(client, concurrency)
            rows.append(
                {"client": name, "concurrency": concurrency, "cpu_us": cpu_us, "wall_us": wall_us}
            )
    await single.aclose()
    await cluster.aclose()
    return rows


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        ports = [_port() for _ in range(4)]
        cluster_opts = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
        procs = [_server(directory, p, *cluster_opts) for p in ports[:3]]
        procs.append(_server(directory, ports[3]))
        try:
            time.sleep(0.5)
            nodes = [f"127.0.0.1:{p}" for p in ports[:3]]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *nodes, *CREATE],
                check=True,
                capture_output=True,
            )
            time.sleep(2)  # the nodes agree on the slot map
            return asyncio.run(_compare(ports[3], ports[0]))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    for row in run():
        print(
            f"concurrency {row['concurrency']:3d}  {row['client']:24s} "
            f"{row['cpu_us']:6.0f} us CPU/call  {row['wall_us']:6.0f} us wall/call"
        )
