"""`make bench` (`python -m bench`): the gateway's hot path measured from outside, in one run.

`wrk` (one thread) drives each server; the upstream is nginx answering a canned chat completion
and a canned SSE stream (`bench/mockstack.py`), so neither the load generator nor the upstream is
Python. Targets, one uvicorn worker each (uvloop + httptools): `direct` (wrk -> nginx), `bare`
(`bench/baseline.py`: the same server and client stack, nothing else), `alephant` (enforcement on,
rate cap, no budgets) and `5budgets` (a money budget on all five scopes of the key's chain + the
rate cap); with `PEERS=1`, also `litellm` and `portkey` (`bench/peers.py`). Cells: JSON at c=64
(RPS, CPU per call), JSON at c=1 (p50 added over `direct`), SSE at c=64, and the paced stream at
c=1 (100 events 1 ms apart from nginx; the % its p50 duration grows over `direct`). CPU per call
is utime + stime over the server's process tree plus the bench's private
`redis-server`. Rounds alternate the target order; every figure is the median of `--rounds`, and
each is also printed as a ratio to `bare` from the same run. Writes `bench/results.md`. About 2
minutes. `BENCH_APP=alephant.asgi:application` benchmarks the dispatcher instead.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import orjson

from alephant.env import load_dotenv
from bench.mockstack import MockStack, ensure_tool
from bench.peers import PREFIX, start_peers
from bench.seed import seed_key
from bench.wrk import Cell, rss_mb, run_wrk
from tests.gateway.servers import Proc, free_port, wait_http

WORKSPACE_ID = 987_654_321
CELLS = (("json", 64), ("json", 1), ("stream", 64), ("paced", 1))
MODES = ("json", "stream", "paced")
TARGETS = ("direct", "bare", "alephant", "5budgets")
RESULTS = Path(__file__).with_name("results.md")


def uvicorn(app: str, port: int, env: dict) -> Proc:
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--no-access-log", "--lifespan", "on", "--log-level", "warning", "--loop", "uvloop"]
    cmd += ["--http", "httptools", "--timeout-graceful-shutdown", "1", "--backlog", "4096"]
    return Proc(cmd, env, app).start()


def body(mode: str, *, model: str = "gpt-4o-mini") -> bytes:
    payload: dict = {
        "model": model,
        "messages": [{"role": "user", "content": "benchmark me, call %d"}],
        "max_tokens": 16,
    }
    if mode in ("stream", "paced"):
        payload["stream"] = True
    return orjson.dumps(payload)  # `%d`: wrk numbers each call (bench/wrk.py)


class Servers:
    """The mock stack, the bare pass-through and the gateway, and where each target is reached."""

    def __init__(self, *, peers: bool) -> None:
        load_dotenv()
        self.stack = MockStack().start()
        env = dict(os.environ, REDIS_URL=self.stack.redis_url, PYTHONDONTWRITEBYTECODE="1")
        env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "1"
        self.bare_port, self.gw_port = free_port(), free_port()
        baseline_env = dict(env, BENCH_UPSTREAM=self.stack.upstream)
        self.bare = uvicorn("bench.baseline:application", self.bare_port, baseline_env)
        app = os.environ.get("BENCH_APP", "gateway.asgi:application")
        self.gateway = uvicorn(app, self.gw_port, env)
        wait_http(f"http://127.0.0.1:{self.bare_port}/", proc=self.bare)
        wait_http(f"http://127.0.0.1:{self.gw_port}/v1/models", timeout=90, proc=self.gateway)
        secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
        self.rss: list[float] = []  # the gateway's, after warm-up and after the rounds
        self.keys = {}
        for i, (target, mode) in enumerate((t, m) for t in ("alephant", "5budgets") for m in MODES):
            self.keys[target, mode] = seed_key(
                redis_url=self.stack.redis_url, key_hash_secret=secret, ws_id=WORKSPACE_ID + i,
                base_url=f"{self.stack.upstream}/{PREFIX[mode]}/v1",
                budgets=target == "5budgets",
            )  # fmt: skip
        self.peers = (
            {p.name: p for p in start_peers(self.stack.upstream, self.stack.tmp)} if peers else {}
        )
        self.targets = TARGETS + tuple(self.peers)

    def where(self, target: str, mode: str) -> tuple[str, dict[str, str], list[int], bytes]:
        """URL, headers, the pids whose CPU counts for `target`, and the request body."""
        prefix = PREFIX[mode]
        headers = {"content-type": "application/json"}
        if target in self.peers:
            peer = self.peers[target]
            url, headers, model = peer.where(mode, self.stack.upstream)
            return url, headers, [peer.pid], body(mode, model=model)
        if target == "direct":
            url = f"{self.stack.upstream}/{prefix}/v1/chat/completions"
            return url, headers, [self.stack.nginx_pid], body(mode)
        if target == "bare":
            url = f"http://127.0.0.1:{self.bare_port}/{prefix}/v1/chat/completions"
            return url, headers, [self._pid(self.bare)], body(mode)
        headers["authorization"] = f"Bearer {self.keys[target, mode]}"
        url = f"http://127.0.0.1:{self.gw_port}/v1/chat/completions"
        return url, headers, [self._pid(self.gateway), self.stack.redis_pid], body(mode)

    @staticmethod
    def _pid(proc: Proc) -> int:
        assert proc.proc is not None
        return proc.proc.pid

    def stop(self) -> None:
        for peer in self.peers.values():
            peer.proc.kill()
        self.gateway.kill()
        self.bare.kill()
        self.stack.stop()


def measure(servers: Servers, *, rounds: int, seconds: float) -> dict[tuple, list[Cell]]:
    cells: dict[tuple, list[Cell]] = {}
    for target in servers.targets:  # warm pools, snapshot caches and script caches
        for mode in ("json", "stream"):
            url, headers, pids, data = servers.where(target, mode)
            run_wrk(url, body=data, headers=headers, connections=64, seconds=1, cpu_pids=pids)
    servers.rss = [rss_mb(servers.where("alephant", "json")[2][0])]
    for round_no in range(rounds):
        order = servers.targets if round_no % 2 == 0 else tuple(reversed(servers.targets))
        for mode, conns in CELLS:
            for target in order:
                url, headers, pids, data = servers.where(target, mode)
                # The paced stream takes ~0.1 s a call: a full-length cell for ~25 samples.
                short = conns == 1 and mode != "paced"
                length = max(1.0, seconds * 2 / 3) if short else seconds
                cell = run_wrk(
                    url, body=data, headers=headers, connections=conns, seconds=length,
                    cpu_pids=pids,
                )  # fmt: skip
                cells.setdefault((target, mode, conns), []).append(cell)
                print(
                    f"  round {round_no + 1} {mode:<6} c={conns:<3} {target:<9}"
                    f"{cell.rps:8.0f} rps  p50 {cell.p50_ms:6.2f} ms"
                    f"  cpu {cell.cpu_ms_per_call:.3f} ms/call  errors {cell.errors}",
                    flush=True,
                )
    servers.rss.append(rss_mb(servers.where("alephant", "json")[2][0]))
    return cells


def _median(cells: list[Cell], attr: str) -> float:
    return statistics.median(getattr(c, attr) for c in cells)


def table(cells: dict[tuple, list[Cell]], targets: tuple[str, ...]) -> str:
    def med(target: str, mode: str, conns: int, attr: str) -> float:
        return _median(cells[target, mode, conns], attr)

    def spread(target: str, mode: str, conns: int) -> str:
        rps = [c.rps for c in cells[target, mode, conns]]
        return f"{(max(rps) - min(rps)) / statistics.median(rps) * 100:.0f} %"

    bare_rps, bare_cpu = med("bare", "json", 64, "rps"), med("bare", "json", 64, "cpu_ms_per_call")
    bare_stream = med("bare", "stream", 64, "rps")
    direct_p50, direct_paced = (
        med("direct", "json", 1, "p50_ms"),
        med("direct", "paced", 1, "p50_ms"),
    )
    lines = [
        "| target | JSON RPS c=64 | vs bare | spread | added p50 c=1 | CPU ms/call | vs bare "
        "| stream RPS c=64 | vs bare | paced stream p50 | added | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target in targets:
        rps, cpu = med(target, "json", 64, "rps"), med(target, "json", 64, "cpu_ms_per_call")
        stream = med(target, "stream", 64, "rps")
        added = med(target, "json", 1, "p50_ms") - direct_p50
        paced = med(target, "paced", 1, "p50_ms")
        # A peer that fails every streamed call (Portkey on Node 20) gets "-", not a latency.
        streams = stream > 0 and med(target, "paced", 1, "requests") > 0
        errors = sum(c.errors for key, group in cells.items() if key[0] == target for c in group)
        lines.append(
            f"| {target} | {rps:,.0f} | {rps / bare_rps:.0%} | {spread(target, 'json', 64)} "
            f"| {'-' if target == 'direct' else f'+{added:.2f} ms'} | {cpu:.3f} "
            f"| {cpu / bare_cpu:.1f}x "
            f"| {f'{stream:,.0f} | {stream / bare_stream:.0%}' if streams else '- | -'} "
            f"| {f'{paced:.1f} ms' if streams else '-'} "
            f"| {'-' if target == 'direct' or not streams else f'{paced / direct_paced - 1:+.1%}'} "
            f"| {errors} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per c=64 cell")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_tool("wrk", "wrk")
    started, load_before = time.time(), " / ".join(f"{x:.1f}" for x in os.getloadavg())
    servers = Servers(peers=os.environ.get("PEERS", "") not in ("", "0"))
    try:
        cells = measure(servers, rounds=args.rounds, seconds=args.seconds)
    finally:
        servers.stop()
    result = table(cells, servers.targets)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    note = (
        f"`make bench`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} "
        f"cores, load average {load_before} at the start and {load} at the end; medians of "
        f"{args.rounds} alternating rounds "
        f"(spread: max-min of JSON RPS over the median); {time.time() - started:.0f} s in all. "
        "CPU: server process tree (+ its private redis-server for the gateway; nginx for direct). "
        "Paced stream: 100 SSE events 1 ms apart (nginx echo module), c=1, p50 of the whole "
        "stream; `added` is its growth over `direct`. "
        f"Gateway worker RSS {servers.rss[0]:.0f} MB after warm-up, {servers.rss[-1]:.0f} MB after "
        "the rounds."
    )
    if servers.peers:
        versions = ", ".join(f"{p.name} {p.version}" for p in servers.peers.values())
        note += f" Peers (PEERS=1, each in its own environment under .bench/): {versions}."
    print("\n" + result + "\n\n" + note)
    RESULTS.write_text("# Hot-path benchmark\n\n" + note + "\n\n" + result + "\n")


if __name__ == "__main__":
    main()
