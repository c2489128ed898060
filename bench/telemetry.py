"""`python -m bench.telemetry`: what observability costs the gateway, in server CPU per call.

The same gateway (one uvicorn worker, the simulator upstream) four times: telemetry off
(metrics in one process' registry, nobody scrapes); Prometheus in multiprocess mode with a
scrape every second; that plus OpenTelemetry export (spans + GenAI metrics) to an OTLP/HTTP
sink in this process; and one call in ten sampled, spans only. Non-streamed chat at
concurrency 64; CPU read from /proc (the exporter's background threads count: they are the
gateway's). The issue's target: < 5 % added CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile

import aiohttp
from aiohttp import web

from alephant.env import load_dotenv
from bench.__main__ import run_cell, seed_snapshots, uvicorn
from tests.gateway.servers import Proc, free_port, wait_http


async def _sink(port: int) -> web.AppRunner:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", ok)
    app.router.add_post("/v1/metrics", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _scrape_forever(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            async with session.get(url) as resp:
                await resp.read()
            await asyncio.sleep(1.0)


async def _one(name: str, env: dict, sim_url: str, secret: str, redis_url: str, seconds: float):
    port = free_port()
    gateway = uvicorn("gateway.asgi:application", port, env)
    scraper = None
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=90, proc=gateway)
        raw_key = seed_snapshots(redis_url, secret, sim_url)
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            scraper = asyncio.create_task(_scrape_forever(f"http://127.0.0.1:{port}/metrics"))
        headers = {"content-type": "application/json", "authorization": f"Bearer {raw_key}"}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        assert gateway.proc is not None
        await run_cell(name, url, headers, False, 64, 1.0, gateway.proc.pid)  # warm up
        return await run_cell(name, url, headers, False, 64, seconds, gateway.proc.pid)
    finally:
        if scraper is not None:
            scraper.cancel()
        gateway.kill()


async def bench(args: argparse.Namespace) -> None:
    load_dotenv()
    base_redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0")
    redis_url = re.sub(r"/\d*$", "", base_redis.rstrip("/")) + f"/{args.redis_db}"
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONDONTWRITEBYTECODE="1")
    for name in ("PROMETHEUS_MULTIPROC_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
    sim_port, sink_port = free_port(), free_port()
    sim = Proc([sys.executable, "-m", "devtools.simulator", "--port", str(sim_port)], env, "sim")
    sim.start()
    sink = await _sink(sink_port)
    sim_url = f"http://127.0.0.1:{sim_port}"
    try:
        wait_http(sim_url + "/_sim/stats", proc=sim)
        with (
            tempfile.TemporaryDirectory() as prom,
            tempfile.TemporaryDirectory() as prom2,
            tempfile.TemporaryDirectory() as prom3,
        ):
            configs = {
                "off": env,
                "prometheus": dict(env, PROMETHEUS_MULTIPROC_DIR=prom),
                "prom+otel": dict(
                    env,
                    PROMETHEUS_MULTIPROC_DIR=prom2,
                    OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
                ),
                # One call in ten traced (the caller's sampled flag still wins), spans only.
                "otel-10%": dict(
                    env,
                    PROMETHEUS_MULTIPROC_DIR=prom3,
                    OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink_port}",
                    OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                    OTEL_TRACES_SAMPLER_ARG="0.1",
                    OTEL_METRICS_EXPORTER="none",
                ),
            }
            results = {}
            for _round in range(args.rounds):
                for name, cfg in configs.items():
                    r = await _one(name, cfg, sim_url, secret, redis_url, args.seconds)
                    results.setdefault(name, []).append(r.cpu_ms_per_req)
                    print(f"  {name:<11} {r.rps:7.0f} rps  {r.cpu_ms_per_req:.3f} ms CPU/call")
        base = min(results["off"])
        print(f"\n{'config':<12}{'best cpu ms/call':>18}{'added':>9}")
        for name, values in results.items():
            best = min(values)
            print(f"{name:<12}{best:>18.3f}{(best / base - 1) * 100:>8.1f}%")
    finally:
        await sink.cleanup()
        sim.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--redis-db", type=int, default=int(os.environ.get("ALEPHANT_BENCH_REDIS_DB", "11"))
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
