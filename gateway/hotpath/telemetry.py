"""What the gateway tells Prometheus, OpenTelemetry and the log about each call.

`Telemetry.record(call)` is the one hook, called once per request when the call ends
(`app.Gateway.http`): it reads what the funnel already put on the `Call` (its usage events, cost,
timings, final status) and adds it to plain in-process dicts keyed by the label tuple (counter
amounts; a histogram's sum and bucket counts). Nothing else on the request path touches a metric.

`flush()` moves those deltas into the prometheus_client objects every `FLUSH_SECONDS` (a task
started with the gateway), right before this process answers `/metrics`, and at shutdown. Why:
in multiprocess mode every `inc`/`observe` takes a lock and writes a memory-mapped file (~12 us of
CPU per call for our ~10 updates); adding to a dict costs a few microseconds, and a flush writes
each touched series once, whatever the number of calls. Nothing is sampled or dropped: a scrape
sees every call, another worker's calls at most `FLUSH_SECONDS` late (a worker killed with
SIGKILL loses at most its last `FLUSH_SECONDS`). The gateway is one event loop per process, so
`record` and `flush` never run at once.

Multiprocess: with `PROMETHEUS_MULTIPROC_DIR` set (before this module is imported) every worker
writes its values to memory-mapped files there and `/metrics` (`scrape.py`) sums them, so
several workers report one view. Labels stay bounded: route, provider, model, status, reason;
members, sessions and properties never become labels (a series per person or per session would
grow without end); a `workspace` label only with `ALEPHANT_METRICS_PER_WORKSPACE=1`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from bisect import bisect_left
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram

if TYPE_CHECKING:
    from gateway.hotpath.call import Call
    from gateway.hotpath.config import Config

ADDED_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
ADMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)
# With +Inf: bisect_left gives the bucket `Histogram.observe` picks (the first bound >= value).
_ADDED = (*ADDED_BUCKETS, float("inf"))
_UPSTREAM = (*UPSTREAM_BUCKETS, float("inf"))
_ADMIT = (*ADMIT_BUCKETS, float("inf"))
FLUSH_SECONDS = 0.5  # the most a scrape of another worker lags behind the calls
# Why the gateway itself refused a call (no provider was asked); any other error is "other".
_REASONS = {
    "budget_exceeded": "budget",
    "rate_limit_exceeded": "rate",
    "loop_detected": "loop",
    "invalid_request_error": "validation",
    "authentication_error": "auth",
    "permission_denied": "auth",
}
_TOKEN_KINDS = ("input", "output", "cached", "reasoning")


def refusal_reason(call: Call) -> str:
    """'' for a call that reached a provider or succeeded; else why the gateway said no."""
    if call.attempts or call.status < 400:
        return ""
    return _REASONS.get(call.error_type, "other")


class Telemetry:
    """The metric objects of one gateway process, and the per-call hook."""

    def __init__(self, config: Config) -> None:
        self.per_workspace = config.metrics_per_workspace
        self.token = config.metrics_token
        self.log_json = config.log_format == "json"
        self.log_bodies = config.log_bodies
        # Private registry: only used when not in multiprocess mode (then `scrape.py` reads it);
        # in multiprocess mode the values live in the files and the registry is ignored.
        self.registry = CollectorRegistry(auto_describe=False)
        ws = ("workspace",) if self.per_workspace else ()
        self._define(ws)
        # Per process, whatever the workspace label: what the OTLP export could not send.
        self.otel_dropped = Counter(
            "alephant_otel_dropped_spans",
            "Sampled spans not exported: the queue was full (queue_full) or the collector did"
            " not take their batch (export_failed).",
            ("reason",),
            registry=self.registry,
        )
        self._children: dict[tuple, Any] = {}
        # Deltas since the last flush: counters {(metric, labels): amount} (int, or Decimal for
        # USD: exact until the flush), histograms {(metric, labels): [sum, bucket counts...]}.
        self._counts: dict[tuple, Any] = {}
        self._hists: dict[tuple, list] = {}
        self._flusher: asyncio.Task | None = None
        self._otel_lost = {"queue_full": 0, "export_failed": 0}  # counted so far
        self.otel: Any = None
        if config.otel_endpoint:
            # Imported only when export is on: no OpenTelemetry cost (or import time) otherwise.
            from gateway.hotpath.otel import OtelExport

            self.otel = OtelExport()
        self._log = _json_logger() if self.log_json else None

    def _define(self, ws: tuple[str, ...]) -> None:
        r = self.registry
        model = (*ws, "provider", "model")
        self.requests = Counter(
            "alephant_requests",
            "Gateway calls by route, provider, model, status and refusal reason.",
            (*ws, "route", "provider", "model", "status", "reason"),
            registry=r,
        )
        self.tokens = Counter(
            "alephant_tokens",
            "Tokens by kind (input, output, cached, reasoning).",
            (*model, "kind"),
            registry=r,
        )
        self.cost = Counter("alephant_cost_usd", "Spend in USD.", model, registry=r)
        self.cache_hits = Counter(
            "alephant_cache_hits", "Answers from the cache.", model, registry=r
        )
        self.cache_saved = Counter(
            "alephant_cache_savings_usd", "What cached answers would have cost.", model, registry=r
        )
        self.upstream_errors = Counter(
            "alephant_upstream_errors",
            "Failed provider attempts by error type.",
            (*model, "error_type"),
            registry=r,
        )
        self.retries = Counter(
            "alephant_upstream_retries",
            "Attempts after the first (retry or fallback).",
            (*ws, "provider"),
            registry=r,
        )
        self.added = Histogram(
            "alephant_added_latency_seconds",
            "Time the gateway adds to a call: the whole call minus the provider's time.",
            (*ws, "route"),
            buckets=ADDED_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "alephant_upstream_latency_seconds",
            "Time spent waiting on the provider.",
            model,
            buckets=UPSTREAM_BUCKETS,
            registry=r,
        )
        self.admit = Histogram(
            "alephant_admission_seconds",
            "Admission (budget, rate, loop script) round trip.",
            (*ws, "route"),
            buckets=ADMIT_BUCKETS,
            registry=r,
        )

    def _child(self, metric: Any, labels: tuple) -> Any:
        """`metric.labels(...)` once per label set: labels() takes a lock and builds a key."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            if len(self._children) > 50_000:  # bounded labels make this unreachable; be safe
                self._children.clear()
            child = self._children[key] = metric.labels(*labels)
        return child

    def _inc(self, metric: Any, labels: tuple, amount: Any = 1) -> None:
        key = (metric, labels)
        self._counts[key] = self._counts.get(key, 0) + amount

    def _observe(self, metric: Any, bounds: tuple, labels: tuple, value: float) -> None:
        key = (metric, labels)
        acc = self._hists.get(key)
        if acc is None:
            acc = self._hists[key] = [0.0] + [0] * len(bounds)
        acc[0] += value
        acc[1 + min(bisect_left(bounds, value), len(bounds) - 1)] += 1

    def flush(self) -> None:
        """Add the deltas since the last flush to the metric objects (this process' registry, or
        its files in multiprocess mode): one `inc` per touched series. Never raises."""
        counts, self._counts = self._counts, {}
        hists, self._hists = self._hists, {}
        if self.otel is not None:
            self._otel_counts(counts)
        try:
            for (metric, labels), amount in counts.items():
                self._child(metric, labels).inc(float(amount))
            for (metric, labels), (total, *buckets) in hists.items():
                child = self._child(metric, labels)
                # What Histogram.observe does one value at a time: _sum and the picked bucket.
                child._sum.inc(total)
                for value, n in zip(child._buckets, buckets, strict=True):
                    if n:
                        value.inc(n)
        except Exception:  # telemetry must never break the gateway
            logging.getLogger("alephant.gateway").exception("telemetry: flush failed")

    def _otel_counts(self, counts: dict) -> None:
        """The exporter's running totals of lost spans, as deltas (the export thread adds to
        `failed`: never reset, only read here)."""
        for reason, total in (
            ("queue_full", self.otel.dropped),
            ("export_failed", self.otel.failed),
        ):
            delta = total - self._otel_lost[reason]
            if delta:
                self._otel_lost[reason] = total
                counts[(self.otel_dropped, (reason,))] = delta

    def start(self) -> None:
        """From the gateway's event loop at startup: flush every FLUSH_SECONDS until `close`."""
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_every())

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.flush()

    def record(self, call: Call, scope: dict | None = None) -> None:
        """The call has ended (answered, refused or failed): count it. Never raises."""
        try:
            reason = refusal_reason(call)  # once: the labels, the span and the log line
            self._record(call, reason)
            if self.otel is not None:
                self.otel.export(call, scope, reason=reason)
            if self._log is not None:
                self._log.info(self.log_line(call, reason))
        except Exception:  # telemetry must never break a call
            logging.getLogger("alephant.gateway").exception("telemetry: record failed")

    def _record(self, call: Call, reason: str) -> None:
        total = time.perf_counter() - call.started
        ws = (str(call.key.get("workspace_id", "")),) if self.per_workspace else ()
        last = call.events[-1] if call.events else None
        provider = last["provider"] if last else ""
        model = last["model"] if last else ""
        status = call.status
        if status == 200 and last is not None and last["status_code"] >= 400:
            status = last["status_code"]  # a stream that was cut or left (502/499)
        labels = (*ws, call.endpoint or "other", provider, model, str(status), reason)
        self._inc(self.requests, labels)
        self._observe(self.added, _ADDED, (*ws, call.endpoint or "other"), total - call.upstream_s)
        if call.admit_s:
            self._observe(self.admit, _ADMIT, (*ws, call.endpoint), call.admit_s)
        if call.attempts:
            self._observe(self.upstream, _UPSTREAM, (*ws, provider, model), call.upstream_s)
            if call.attempts > 1:
                self._inc(self.retries, (*ws, provider), call.attempts - 1)
        for event in call.events:
            self._event(ws, event, upstream=bool(call.attempts))

    def _event(self, ws: tuple, event: dict, *, upstream: bool) -> None:
        key = (*ws, event["provider"], event["model"])
        for kind in _TOKEN_KINDS:
            n = event[kind + "_tokens"]
            if n:
                self._inc(self.tokens, (*key, kind), n)
        cost = event["cost_usd"]
        if cost != "0":
            self._inc(self.cost, key, Decimal(cost))
        if event["cache_hit"]:
            self._inc(self.cache_hits, key)
            self._inc(self.cache_saved, key, Decimal(event["saved_usd"]))
        if upstream and event["error_type"] and event["status_code"] >= 400:
            self._inc(self.upstream_errors, (*key, event["error_type"]))

    def log_line(self, call: Call, reason: str | None = None) -> str:
        """One JSON object: ids, model, status, tokens, cost, latency. Never a key or a secret;
        the prompt only with ALEPHANT_LOG_BODIES=1."""
        who = call.who
        last = call.events[-1] if call.events else {}
        line: dict[str, Any] = {
            "event": "gateway.call",
            "request_id": call.request_id,
            "workspace_id": call.key.get("workspace_id"),
            "gateway_key_id": call.key.get("key_id"),
            "member_id": who.member_id if who else None,
            "agent_id": who.agent_id if who else None,
            "session_id": (who.session_id or None) if who else None,
            "route": call.endpoint,
            "provider": last.get("provider"),
            "model": last.get("model"),
            "status": call.status,
            "refusal_reason": (refusal_reason(call) if reason is None else reason) or None,
            "error_type": call.error_type or last.get("error_type") or None,
            "input_tokens": sum(e["input_tokens"] for e in call.events),
            "output_tokens": sum(e["output_tokens"] for e in call.events),
            "cost_usd": str(call.cost.normalize() if call.cost else Decimal(0)),
            "cache_hit": bool(last.get("cache_hit")),
            "attempts": call.attempts,
            "latency_ms": round((time.perf_counter() - call.started) * 1000, 2),
            "upstream_ms": round(call.upstream_s * 1000, 2),
        }
        if self.log_bodies:
            line["request_body"] = call.raw.decode("utf-8", "replace")
        return orjson.dumps(line).decode()

    def close(self) -> None:
        """Shutdown: stop the flush task and flush what is left (the files outlive the worker)."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self.otel is not None:
            self.otel.close()  # first: spans lost in its last batches are counted below
        self.flush()


def _json_logger() -> logging.Logger:
    """`alephant.calls`: one bare JSON line per call on stdout, whatever the root logger does."""
    log = logging.getLogger("alephant.calls")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
