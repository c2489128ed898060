"""The in-process half of `python -m bench.telemetry`: CPU per call of the telemetry hook with
OpenTelemetry export, measured with the thread CPU clock, so neither wrk, the scheduler nor the
sink (a thread of its own) is in the figure.

Varied calls (token counts, costs, request and session ids, 50 keys, 3 models), as a real mix
would be: the encoder's caches do not flatter it. For each sampling ratio: the request-path
hook (`Telemetry.record`, Prometheus dictionaries + OTel) minus the same hook without OTel, and
the export thread's work per sampled span (`OtelExport.drain`: encode batches of 512, POST them
to the sink), run here in the measuring thread.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from decimal import Decimal

from gateway.hotpath.call import Call
from gateway.hotpath.config import Config
from gateway.hotpath.otel import OtelExport
from gateway.hotpath.otlpexport import Settings
from gateway.hotpath.routing import Attribution
from gateway.hotpath.telemetry import Telemetry

MODELS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4")
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer ak_live_0123456789abcdef"),
    (b"content-length", b"120"),
    (b"user-agent", b"bench"),
]


def calls(n: int, *, seed: int = 7) -> list[Call]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        call = Call("req_" + os.urandom(12).hex(), "chat", "openai", time.perf_counter(), 0.0)
        k = rng.randrange(50)
        call.key = {"workspace_id": 1000 + k % 5, "key_id": k}
        session = f"sess-{rng.randrange(1000)}" if i % 2 else ""
        call.who = Attribution(k, k % 7, None, session, "", "", {})
        n_in, n_out = rng.randrange(10, 4000), rng.randrange(1, 800)
        call.cost = Decimal(n_in) * Decimal("0.00000015") + Decimal(n_out) * Decimal("0.0000006")
        call.attempts, call.upstream_s, call.admit_s = 1, 0.2, 0.0003
        call.events.append(
            {
                "provider": "openai",
                "model": MODELS[i % 3],
                "input_tokens": n_in,
                "output_tokens": n_out,
                "cached_tokens": rng.choice((0, 0, 1024)),
                "reasoning_tokens": 0,
                "cost_usd": str(call.cost),
                "saved_usd": "0",
                "cache_hit": False,
                "status_code": 200,
                "error_type": "",
            }
        )
        out.append(call)
    return out


def _hook_us(telemetry: Telemetry, batch: list[Call]) -> float:
    scope = {"headers": HEADERS}
    record = telemetry.record
    start = time.thread_time()
    for call in batch:
        record(call, scope)
    return (time.thread_time() - start) / len(batch) * 1e6


def _one(port: int, batch: list[Call], ratio: float) -> tuple[float, float, float, float]:
    """(hook us/call without OTel, with OTel, export us per sampled span, spans sampled)."""
    plain = Telemetry(Config("k"))
    traced = Telemetry(Config("k"))
    settings = Settings(
        traces_url=f"http://127.0.0.1:{port}/micro/v1/traces",
        metrics_url=f"http://127.0.0.1:{port}/micro/v1/metrics",
        schedule_delay_s=3600,  # the thread stays idle: drain() runs below, measured
        max_queue=10**9,
        batch_size=10**9,
        sampler="parentbased_traceidratio",
        sampler_arg=ratio,
    )
    traced.otel = otel = OtelExport(settings)
    try:
        off = _hook_us(plain, batch)
        on = _hook_us(traced, batch)
        sampled = len(otel.queue)
        otel.batch_size = 512
        start = time.thread_time()
        otel.drain()
        otel.send_metrics()  # once per export interval, amortised here over the whole batch
        export = (time.thread_time() - start) * 1e6
        assert otel.failed == 0, "the sink refused a batch"
    finally:
        otel.close()
    return off, on, export / max(sampled, 1), sampled / len(batch)


def micro(port: int, *, calls_n: int = 20_000, rounds: int = 3) -> None:
    batch = calls(calls_n)
    print(f"\nin-process, {calls_n} varied calls, median of {rounds} (thread CPU time):")
    print(f"{'sampled':<9}{'hook us':>9}{'+OTel us':>10}{'export us/span':>16}{'us per call':>13}")
    for ratio in (1.0, 0.1):
        rows = [_one(port, batch, ratio) for _ in range(rounds)]
        off, on, export, share = (statistics.median(r[i] for r in rows) for i in range(4))
        per_call = on - off + export * share
        print(f"{share:<9.0%}{off:>9.2f}{on - off:>10.2f}{export:>16.2f}{per_call:>13.2f}")
