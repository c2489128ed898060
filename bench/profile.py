"""Where a gateway call's CPU goes: `python -m bench.profile [--mode json|stream] [--seconds 12]`.

The same stack as `make bench` (nginx upstream, private Redis, one uvicorn worker, the 5-budget
key), driven by `wrk` at c=64 while `py-spy` (installed ad hoc: `.venv/bin/pip install py-spy`)
samples the gateway worker. Each sample is charged to the innermost frame that names a part of
the call (`PARTS`), so a Python helper called from the admission code counts as admission; what
matches nothing is the server, the event loop and the socket I/O (`ASGI/loop`). Shares of the
samples times the gateway's CPU per call from the same run give microseconds per call; Redis'
own CPU per call is read from its `INFO commandstats` (EVALSHA is admit + settle).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import redis

from bench.__main__ import Servers
from bench.wrk import Cell, cpu_seconds, run_wrk

# (part, pattern on one collapsed frame "function (file:line)"); the first innermost match wins.
PARTS = (
    # The server's own frames first: a send() from our code is the server's (and socket) time.
    ("ASGI server (uvicorn, sockets)", r"\(uvicorn/(protocols|middleware)/"),
    ("settle script (client)", r"^(account|release_unsettled|Enforcer\.(settle|release|_finish)) "),
    ("event write", r"\(gateway/hotpath/(usage|spool)\.py|^usage_event "),
    ("admission (client)", r"\(gateway/hotpath/(enforcer|budgets|refusals|admission)\.py|^_admit "),
    ("Redis client", r"\(gateway/hotpath/(resp|scripts)\.py"),
    ("auth", r"\(gateway/hotpath/(auth|snapshots)\.py|\(core/keyhash\.py"),
    ("routing + validation", r"\(gateway/hotpath/(routing|requests|validate|catalog)\.py"),
    ("pricing", r"\(core/(pricing|money)\.py|^add_usage "),
    ("SSE relay + usage", r"\(gateway/hotpath/(relay|streamcut)\.py|providers/"),
    (
        "upstream client (core/http1)",
        r"\(core/http1|\(aiohttp/|\(yarl/|\(multidict/|^forward |^_exchange ",
    ),
    ("telemetry", r"\(gateway/hotpath/(telemetry|otel)\.py|prometheus_client"),
    ("funnel + JSON", r"\(gateway/hotpath/(funnel|forward|call|http|app)\.py"),
)
_COMPILED = [(name, re.compile(pattern)) for name, pattern in PARTS]
_ASGI = "event loop (uvloop, asyncio) and the rest"


def classify(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        frame = re.sub(r"\(.*?site-packages/", "(", frame)
        frame = re.sub(r"\(/work/main/", "(", frame)
        for name, pattern in _COMPILED:
            if pattern.search(frame):
                return name
    return _ASGI


def breakdown(collapsed: Path) -> Counter:
    parts: Counter = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            parts[classify(stack)] += int(count)
    return parts


def _commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Calls and usec of each command (the commands a script runs are counted too)."""
    return {
        name.removeprefix("cmdstat_"): (int(v.get("calls", 0)), int(v.get("usec", 0)))
        for name, v in client.info("commandstats").items()
    }


def profile(mode: str, seconds: float, rate: int) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    servers = Servers(peers=False)
    try:
        url, headers, pids, data = servers.where("5budgets", mode)
        gateway_pid = pids[0]
        for _ in range(2):  # warm pools and caches
            run_wrk(url, body=data, headers=headers, connections=64, seconds=2, cpu_pids=pids)
        out = Path(tempfile.mkdtemp(prefix="alephant-profile-")) / f"{mode}.collapsed"
        client = redis.Redis.from_url(servers.stack.redis_url)
        stats0 = _commandstats(client)
        gw0 = cpu_seconds([gateway_pid])
        result: dict[str, Cell] = {}

        def load() -> None:
            result["cell"] = run_wrk(
                url, body=data, headers=headers, connections=64, seconds=seconds, cpu_pids=pids
            )

        driver = threading.Thread(target=load)
        driver.start()
        subprocess.run(
            [py_spy, "record", "--pid", str(gateway_pid), "--rate", str(rate), "--nonblocking",
             "--duration", str(max(1, int(seconds) - 1)), "--format", "raw", "--output", str(out)],
            check=True, capture_output=True,
        )  # fmt: skip
        driver.join()
        cell = result["cell"]
        gw_ms = (cpu_seconds([gateway_pid]) - gw0) * 1000 / cell.requests
        stats1 = _commandstats(client)
        client.close()
    finally:
        servers.stop()
    parts = breakdown(out)
    total = sum(parts.values())
    print(f"\n{mode}, 5 budgets + rate cap, c=64: {cell.rps:,.0f} RPS, gateway CPU {gw_ms:.3f} ms")
    print(f"per call, py-spy {rate} Hz, {total} samples ({out})\n")
    print("| part | share of gateway CPU | us per call |\n|---|---|---|")
    for name, samples in parts.most_common():
        share = samples / total
        print(f"| {name} | {share:.1%} | {share * gw_ms * 1000:.0f} |")
    calls = max(1, cell.requests)
    delta = {
        name: (c - stats0.get(name, (0, 0))[0], u - stats0.get(name, (0, 0))[1])
        for name, (c, u) in stats1.items()
    }
    evalsha_calls, evalsha_usec = delta.get("evalsha", (0, 0))
    print(
        f"| Redis: admit + settle scripts ({evalsha_calls / calls:.1f} EVALSHA a call) | - "
        f"| {evalsha_usec / calls:.0f} |"
    )
    print("\nInside Redis, per call (commands the scripts run; their usec is within EVALSHA's):")
    for name, (c, u) in sorted(delta.items(), key=lambda kv: -kv[1][1])[:12]:
        if c:
            print(f"  {name:<18} {c / calls:5.2f} calls  {u / calls:6.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("json", "stream"), default="json")
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    args = parser.parse_args()
    profile(args.mode, args.seconds, args.rate)


if __name__ == "__main__":
    main()
