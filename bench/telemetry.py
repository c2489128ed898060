"""`python -m bench.telemetry`: what observability costs the gateway, in server CPU per call.

The same gateway (one uvicorn worker; nginx upstream and wrk load as in `python -m bench`) four
times: telemetry off (nobody scrapes); Prometheus in multiprocess mode with a scrape every
second; that plus OpenTelemetry export (spans + GenAI metrics) to an OTLP/HTTP sink in this
process; and one call in ten sampled, spans only. JSON chat at concurrency 64; CPU of the
gateway's process tree and its redis-server (the exporter's background threads count: they are
the gateway's). Medians of `--rounds`. The issue's target: < 5 % added CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading

import httpx
from aiohttp import web

from alephant.env import load_dotenv
from bench.__main__ import body, uvicorn
from bench.mockstack import MockStack
from bench.seed import seed_key
from bench.wrk import run_wrk
from tests.gateway.servers import free_port, wait_http

WORKSPACE_ID = 987_000_111


class Sink:
    """An OTLP/HTTP endpoint that takes and drops everything (in a thread of this process)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        async def ok(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=b"", content_type="application/x-protobuf")

        app = web.Application()
        app.router.add_post("/v1/traces", ok)
        app.router.add_post("/v1/metrics", ok)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.loop.run_forever()


def _scrape_every_second(url: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        httpx.get(url, timeout=5)


def _one(name: str, env: dict, stack: MockStack, seconds: float) -> float:
    """CPU ms per call of one gateway process started with `env`."""
    port = free_port()
    gateway = uvicorn("gateway.asgi:application", port, env)
    stop = threading.Event()
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=90, proc=gateway)
        secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
        raw = seed_key(
            redis_url=stack.redis_url, key_hash_secret=secret, ws_id=WORKSPACE_ID,
            base_url=f"{stack.upstream}/json/v1", budgets=False,
        )  # fmt: skip
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            scrape = f"http://127.0.0.1:{port}/metrics"
            threading.Thread(target=_scrape_every_second, args=(scrape, stop), daemon=True).start()
        headers = {"content-type": "application/json", "authorization": f"Bearer {raw}"}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        assert gateway.proc is not None
        pids = [gateway.proc.pid, stack.redis_pid]
        run_wrk(url, body=body("json"), headers=headers, connections=64, seconds=1, cpu_pids=pids)
        cell = run_wrk(
            url, body=body("json"), headers=headers, connections=64, seconds=seconds,
            cpu_pids=pids,
        )  # fmt: skip
        print(
            f"  {name:<11}{cell.rps:8.0f} rps  {cell.cpu_ms_per_call:.3f} ms CPU/call"
            f"  errors {cell.errors}",
            flush=True,
        )
        return cell.cpu_ms_per_call
    finally:
        stop.set()
        gateway.kill()


def configs(base: dict, sink: Sink, tmp: str) -> dict[str, dict]:
    otlp = f"http://127.0.0.1:{sink.port}"
    return {
        "off": base,
        "prometheus": dict(base, PROMETHEUS_MULTIPROC_DIR=f"{tmp}/a"),
        "prom+otel": dict(
            base, PROMETHEUS_MULTIPROC_DIR=f"{tmp}/b", OTEL_EXPORTER_OTLP_ENDPOINT=otlp
        ),
        # One call in ten traced (a caller's sampled flag still wins), spans only.
        "otel-10%": dict(
            base,
            PROMETHEUS_MULTIPROC_DIR=f"{tmp}/c",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0.1",
            OTEL_METRICS_EXPORTER="none",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_dotenv()
    stack = MockStack().start()
    sink = Sink()
    env = dict(os.environ, REDIS_URL=stack.redis_url, PYTHONDONTWRITEBYTECODE="1")
    env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "1"
    for name in ("PROMETHEUS_MULTIPROC_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    results: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for sub in "abc":
                os.mkdir(f"{tmp}/{sub}")
            for _round in range(args.rounds):
                for name, cfg in configs(env, sink, tmp).items():
                    results.setdefault(name, []).append(_one(name, cfg, stack, args.seconds))
    finally:
        stack.stop()
    base = statistics.median(results["off"])
    print(f"\n{'config':<12}{'cpu ms/call (median)':>22}{'added':>9}")
    for name, values in results.items():
        value = statistics.median(values)
        print(f"{name:<12}{value:>22.3f}{(value / base - 1) * 100:>8.1f}%")


if __name__ == "__main__":
    main()
