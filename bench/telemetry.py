"""`python -m bench.telemetry`: what observability costs the gateway, in server CPU per call.

The same gateway (one uvicorn worker; nginx upstream and wrk load as in `python -m bench`) four
times per round, a fresh process each, in alternating order: telemetry off (nobody scrapes);
Prometheus in multiprocess mode with a scrape every second; that plus OpenTelemetry export with
every call traced (spans + the GenAI metrics, exported every second) to an OTLP/HTTP sink in
this process; the same with one root call in ten sampled. JSON chat at concurrency 64; CPU of
the gateway's process tree and its redis-server (the exporter's background thread counts: it is
the gateway's). Medians of `--rounds`; OpenTelemetry's cost is reported over the Prometheus run
(it is added on top of it). The issue's target: < 5 % added CPU per call.

Then (`bench/telemetry_micro.py`) the same work in one process, without load-generator or
scheduler noise: CPU per call of the request-path hook and of the export thread's encoding and
POST, per traced call.
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
from bench.telemetry_micro import micro
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
        try:
            httpx.get(url, timeout=5)
        except httpx.HTTPError:  # the gateway is being stopped
            return


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
        # Every call traced, GenAI metrics on and exported every second (the default is 60 s).
        "otel-100%": dict(
            base,
            PROMETHEUS_MULTIPROC_DIR=f"{tmp}/b",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
            OTEL_METRIC_EXPORT_INTERVAL="1000",
        ),
        # One root call in ten traced (a caller's sampled flag would still win).
        "otel-10%": dict(
            base,
            PROMETHEUS_MULTIPROC_DIR=f"{tmp}/c",
            OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
            OTEL_METRIC_EXPORT_INTERVAL="1000",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0.1",
        ),
    }


def _report(results: dict[str, list[float]]) -> None:
    base = statistics.median(results["off"])
    prom = statistics.median(results["prometheus"])
    print(f"\n{'config':<12}{'cpu ms/call (median)':>22}{'vs off':>9}{'vs prometheus':>15}")
    for name, values in results.items():
        value = statistics.median(values)
        over_prom = f"{(value / prom - 1) * 100:>14.1f}%" if name.startswith("otel") else ""
        print(f"{name:<12}{value:>22.3f}{(value / base - 1) * 100:>8.1f}%{over_prom}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000, help="in-process part")
    parser.add_argument("--no-wrk", action="store_true", help="the in-process part only")
    args = parser.parse_args()
    load_dotenv()
    sink = Sink()
    if not args.no_wrk:
        _wrk_rounds(args, sink)
    micro(sink.port, calls_n=args.calls)


def _wrk_rounds(args: argparse.Namespace, sink: Sink) -> None:
    stack = MockStack().start()
    env = dict(os.environ, REDIS_URL=stack.redis_url, PYTHONDONTWRITEBYTECODE="1")
    env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "1"
    for name in list(env):
        if name.startswith("OTEL_") or name == "PROMETHEUS_MULTIPROC_DIR":
            env.pop(name)
    results: dict[str, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for sub in "abc":
                os.mkdir(f"{tmp}/{sub}")
            for round_ in range(args.rounds):
                cells = list(configs(env, sink, tmp).items())
                if round_ % 2:
                    cells.reverse()  # alternate the order: drift on the box hits all alike
                for name, cfg in cells:
                    results.setdefault(name, []).append(_one(name, cfg, stack, args.seconds))
    finally:
        stack.stop()
    _report({name: results[name] for name in ("off", "prometheus", "otel-100%", "otel-10%")})


if __name__ == "__main__":
    main()
