"""`python -m bench.telemetry`: what observability costs the gateway, in server CPU per call.

Four gateways (one uvicorn worker each; nginx upstream and wrk load as in `python -m bench`):
telemetry off (nobody scrapes); Prometheus in multiprocess mode with a scrape every second;
that plus OpenTelemetry with every call traced (spans + the GenAI metrics, exported every
second) to an OTLP/HTTP sink in this process; the same with one root call in ten sampled. JSON
chat at concurrency 64.

By default the four run **side by side**: all started at once, and each round drives all four
with its own wrk at the same time, so whatever else loads the (shared, 2-core) box loads them
alike; CPU per call is the gateway process tree's alone (they share one redis-server, whose CPU
cannot be split between them: leaving it out makes every added % larger, not smaller). Each
round gives a ratio per configuration against `prometheus` of the same round; the medians of
those ratios are reported. `--sequential` runs them one after the other instead (fresh process
per cell, alternating order, gateway + its redis CPU), as the first version of this bench did.
The exporter's background thread counts: it is the gateway's. The issue's target: < 5 % added
CPU per call.

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
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from alephant.env import load_dotenv
from bench.__main__ import body, uvicorn
from bench.mockstack import MockStack
from bench.seed import seed_key
from bench.telemetry_micro import micro
from bench.wrk import Cell, run_wrk
from tests.gateway.servers import Proc, free_port, wait_http

WORKSPACE_ID = 987_000_111


class Sink:
    """An OTLP/HTTP endpoint (in a thread of this process) that counts what each gateway sends
    (`/<name>/v1/traces`: spans decoded and counted) and drops it: proof that the exporters
    really exported while they were measured."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: dict[str, int] = {}
        self.metric_posts: dict[str, int] = {}
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        async def traces(request: web.Request) -> web.Response:
            export = ExportTraceServiceRequest.FromString(await request.read())
            name = request.match_info["name"]
            count = sum(len(ss.spans) for rs in export.resource_spans for ss in rs.scope_spans)
            self.spans[name] = self.spans.get(name, 0) + count
            return web.Response(body=b"", content_type="application/x-protobuf")

        async def metrics(request: web.Request) -> web.Response:
            await request.read()
            name = request.match_info["name"]
            self.metric_posts[name] = self.metric_posts.get(name, 0) + 1
            return web.Response(body=b"", content_type="application/x-protobuf")

        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/{name}/v1/traces", traces)
        app.router.add_post("/{name}/v1/metrics", metrics)
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
            OTEL_EXPORTER_OTLP_ENDPOINT=f"{otlp}/all",
            OTEL_METRIC_EXPORT_INTERVAL="1000",
        ),
        # One root call in ten traced (a caller's sampled flag would still win).
        "otel-10%": dict(
            base,
            PROMETHEUS_MULTIPROC_DIR=f"{tmp}/c",
            OTEL_EXPORTER_OTLP_ENDPOINT=f"{otlp}/tenth",
            OTEL_METRIC_EXPORT_INTERVAL="1000",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0.1",
        ),
    }


def _start(name: str, env: dict, stack: MockStack) -> tuple[Proc, str, threading.Event]:
    port = free_port()
    gateway = uvicorn("gateway.asgi:application", port, env)
    wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=90, proc=gateway)
    stop = threading.Event()
    if "PROMETHEUS_MULTIPROC_DIR" in env:
        scrape = f"http://127.0.0.1:{port}/metrics"
        threading.Thread(target=_scrape_every_second, args=(scrape, stop), daemon=True).start()
    return gateway, f"http://127.0.0.1:{port}/v1/chat/completions", stop


def _concurrent(running: dict, headers: dict, seconds: float) -> dict[str, Cell]:
    """One wrk per gateway, all at the same time; CPU of each gateway's process tree."""
    cells: dict[str, Cell] = {}

    def drive(name: str) -> None:
        gateway, url, _stop = running[name]
        cells[name] = run_wrk(
            url, body=body("json"), headers=headers, connections=64, seconds=seconds,
            cpu_pids=[gateway.proc.pid],
        )  # fmt: skip

    threads = [threading.Thread(target=drive, args=(name,)) for name in running]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: cells[name] for name in running}


def _side_by_side(
    cfgs: dict[str, dict], stack: MockStack, sink: Sink, args: argparse.Namespace
) -> None:
    """All configurations at once, `args.rounds` rounds of concurrent wrk runs."""
    running = {name: _start(name, env, stack) for name, env in cfgs.items()}
    env = next(iter(cfgs.values()))
    secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY", "")
    raw = seed_key(
        redis_url=stack.redis_url, key_hash_secret=secret, ws_id=WORKSPACE_ID,
        base_url=f"{stack.upstream}/json/v1", budgets=False,
    )  # fmt: skip
    headers = {"content-type": "application/json", "authorization": f"Bearer {raw}"}
    results: dict[str, list[float]] = {name: [] for name in cfgs}
    answered = dict.fromkeys(cfgs, 0)
    try:
        for round_ in range(args.rounds + 1):  # round 0 warms up, not counted
            cells = _concurrent(running, headers, args.seconds if round_ else 1)
            for name, cell in cells.items():
                answered[name] += cell.requests
            if round_:
                line = "  ".join(
                    f"{name} {c.rps:5.0f} rps {c.cpu_ms_per_call:.3f} ms ({c.errors} err)"
                    for name, c in cells.items()
                )
                print(f"  round {round_}: {line}", flush=True)
                for name, cell in cells.items():
                    results[name].append(cell.cpu_ms_per_call)
    finally:
        for gateway, _url, stop in running.values():
            stop.set()
            gateway.kill()  # SIGTERM: the exporters send what they hold before exiting
    _report(results)
    for name, path in (("otel-100%", "all"), ("otel-10%", "tenth")):
        print(
            f"{name}: the sink got {sink.spans.get(path, 0)} spans for {answered[name]} calls"
            f" wrk saw answered, {sink.metric_posts.get(path, 0)} metric exports"
        )


def _report(results: dict[str, list[float]]) -> None:
    """Medians, and the medians of each round's ratio to `off` and to `prometheus`."""
    print(f"\n{'config':<12}{'cpu ms/call (median)':>22}{'vs off':>9}{'vs prometheus':>15}")
    for name, values in results.items():
        vs_off = statistics.median(v / o for v, o in zip(values, results["off"], strict=True))
        vs_prom = statistics.median(
            v / p for v, p in zip(values, results["prometheus"], strict=True)
        )
        over_prom = f"{(vs_prom - 1) * 100:>14.1f}%" if name.startswith("otel") else ""
        median = statistics.median(values)
        print(f"{name:<12}{median:>22.3f}{(vs_off - 1) * 100:>8.1f}%{over_prom}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sequential", action="store_true", help="one gateway at a time")
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
            if not args.sequential:
                _side_by_side(configs(env, sink, tmp), stack, sink, args)
                return
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
