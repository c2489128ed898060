"""OpenTelemetry export: one span per gateway call (GenAI semantic conventions) and the GenAI
client metrics, sent over OTLP/HTTP protobuf by a background thread (batched, off the request
path).

Imported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`telemetry.Telemetry`), so a gateway
without a collector pays nothing. No OpenTelemetry SDK: its span objects, attribute hashing and
generated protobuf classes cost ~150 us per traced call (+75 % CPU per call). Here the request
path only decides sampling and appends one tuple of references (times, ids, the call's fields)
to a bounded deque; the export thread encodes batches by hand (`otelspans.py`, `otlp.py`) and
POSTs them (`otlpexport.py`). The GenAI metrics are two histograms added to in-process
(cumulative) and encoded once per export interval. The standard `OTEL_*` variables apply
(`otlpexport.Settings`).

Sampling is the SDK's: parent-based by default (an incoming `traceparent`'s sampled flag
decides; the span joins the caller's trace), else `OTEL_TRACES_SAMPLER` (`always_on`,
`always_off`, `traceidratio`, and their `parentbased_*` forms) with the trace-id ratio rule
(the low 64 bits of the trace id below ratio x 2^64). An unsampled call builds nothing. A full
queue drops the span and counts it (`alephant_otel_dropped_spans_total`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from collections import deque
from functools import partial
from random import getrandbits
from typing import TYPE_CHECKING, Any

from gateway.hotpath import otlp
from gateway.hotpath.otelmetrics import GenAiMetrics
from gateway.hotpath.otelspans import OPERATIONS, PROVIDERS, SpanEncoder
from gateway.hotpath.otlpexport import ExportThread, Poster, Settings

if TYPE_CHECKING:
    from gateway.hotpath.call import Call

logger = logging.getLogger("alephant.gateway")

__all__ = ["OPERATIONS", "PROVIDERS", "OtelExport", "parse_traceparent"]

_FULL = 1 << 64
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
SCOPE = "alephant.gateway"
_CLEAR_EVERY_S = 60.0  # forget the span encoder's cached groups (a renamed agent) this often


def parse_traceparent(value: bytes) -> tuple[bytes, bytes, int] | None:
    """W3C `traceparent` -> (trace id, parent span id, flags), or None when invalid (as the
    SDK's propagator: version ff, zero ids, or extra fields on version 00 are invalid)."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    trace_id, span_id = bytes.fromhex(trace_hex.decode()), bytes.fromhex(span_hex.decode())
    if not any(trace_id) or not any(span_id):
        return None
    return trace_id, span_id, int(flags, 16)


def _header(scope: Any, wanted: bytes) -> bytes | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return value
    return None


def _after_fork(ref: weakref.ref[OtelExport]) -> None:
    otel = ref()
    if otel is not None:
        otel._forked()


def _sampler(name: str, ratio: float) -> tuple[bool, int]:
    """(parent-based?, root bound): a root call is sampled when its draw is below the bound."""
    parent_based = name.startswith("parentbased_")
    root = name.removeprefix("parentbased_")
    if root == "always_off":
        return parent_based, 0
    if root == "traceidratio":
        return parent_based, round(ratio * _FULL)
    return parent_based, _FULL  # always_on, and anything unknown (the SDK's default)


class OtelExport:
    def __init__(self, settings: Settings | None = None) -> None:
        s = self.settings = settings or Settings.from_env()
        self.parent_based, self.bound = _sampler(s.sampler, s.sampler_arg)
        if not s.traces_on:
            self.parent_based, self.bound = False, 0
        self.queue: deque[tuple] = deque()
        self.max_queue, self.batch_size = s.max_queue, s.batch_size
        self.dropped = 0  # spans the full queue refused (request path)
        self.failed = 0  # spans in batches the collector did not take (export thread)
        self.metrics_on = s.metrics_on
        self.metrics = GenAiMetrics()
        self._aggregate = self.metrics.record
        attrs = {"service.name": "alephant-gateway", "telemetry.sdk.language": "python"}
        attrs.update(s.resource)
        self._resource = otlp.resource(attrs)
        self._scope = otlp.scope(SCOPE)
        self._spans = SpanEncoder()
        self._clear_at = time.monotonic() + _CLEAR_EVERY_S
        self._drain_lock = threading.Lock()
        gzip_on = s.compression == "gzip"
        self._traces = Poster(
            s.traces_url, s.traces_headers, timeout_s=s.timeout_s, gzip_on=gzip_on
        )
        self._metrics = Poster(
            s.metrics_url, s.metrics_headers, timeout_s=s.timeout_s, gzip_on=gzip_on
        )
        self._thread = ExportThread(
            self.drain,
            self.send_metrics if self.metrics_on else None,
            delay_s=s.schedule_delay_s,
            metric_interval_s=s.metric_interval_s,
        )
        # A server that forks its workers after loading the app (gunicorn --preload): each
        # child starts its own thread and connections, with an empty queue and fresh metrics
        # (the parent's would be sent twice).
        self._closed = False
        os.register_at_fork(after_in_child=partial(_after_fork, weakref.ref(self)))

    def _forked(self) -> None:
        if self._closed:
            return
        self.queue.clear()
        self.metrics = GenAiMetrics()
        self._aggregate = self.metrics.record
        self._drain_lock = threading.Lock()
        self._traces.forget()
        self._metrics.forget()
        self._thread.start()

    def export(self, call: Call, scope: dict | None, *, reason: str) -> None:
        """The request path, once per call: the metrics, then the sampler, then (sampled) one
        tuple on the queue. `reason`: why the gateway refused the call, or ''."""
        end_ns = time.time_ns()
        elapsed = time.perf_counter() - call.started
        if self.metrics_on:
            self._aggregate(call, elapsed)
        parent = state = None
        if scope is not None:
            for name, value in scope["headers"]:
                if name == b"traceparent":
                    parent = value
                    break
        trace: Any = None
        if parent is not None and (context := parse_traceparent(parent)) is not None:
            trace, parent, flags = context
            state = _header(scope, b"tracestate")
            if self.parent_based:
                if not flags & 1:
                    return
            elif int.from_bytes(trace[8:], "big") >= self.bound:
                return
        else:
            parent = state = None
            if self.bound < _FULL:
                if not self.bound:
                    return
                trace = getrandbits(64)  # the trace id's low half, drawn now to decide
                if trace >= self.bound:
                    return
        queue = self.queue
        if len(queue) >= self.max_queue:
            self.dropped += 1
            return
        queue.append(
            (end_ns, elapsed, trace, parent, state, call.endpoint, call.events, call.key,
             call.who, call.request_id, call.status, call.attempts, call.cost, call.error_type,
             reason)
        )  # fmt: skip
        if len(queue) == self.batch_size:
            self._thread.wake.set()

    # The export thread's side.

    def drain(self) -> int:
        """Encode and POST the queued spans, a batch at a time; returns how many. One drain
        at a time (the export thread's, or a caller's on shutdown): one HTTP connection."""
        with self._drain_lock:
            return self._drain()

    def _drain(self) -> int:
        queue, done = self.queue, 0
        if time.monotonic() >= self._clear_at:
            self._clear_at = time.monotonic() + _CLEAR_EVERY_S
            self._spans.clear()
        while queue:
            batch = [queue.popleft() for _ in range(min(len(queue), self.batch_size))]
            spans = self._encode(batch)
            if spans and not self._traces.post(
                otlp.traces_request(self._resource, self._scope, spans)
            ):
                self.failed += len(spans)
            done += len(batch)
            if len(batch) < self.batch_size:
                break
        return done

    def _encode(self, batch: list[tuple]) -> list[bytes]:
        """The batch's Span messages; a record that cannot be encoded (a field of a type
        nobody expected) is logged, counted as failed and skipped, never the whole batch."""
        ids = os.urandom(24 * len(batch))  # span id, then a root span's trace id, per record
        span, spans = self._spans.span, []
        for i, record in enumerate(batch):
            at = i * 24
            try:
                spans.append(span(record, ids[at : at + 8], ids[at + 8 : at + 24]))
            except Exception:
                self.failed += 1
                logger.exception("otlp: cannot encode the span of %s", record[9])
        return spans

    def send_metrics(self) -> None:
        """A failed post is logged by the poster; the next interval sends the cumulative totals
        again, so nothing is lost but time resolution."""
        body = self.metrics.body(self._resource, self._scope)
        if body is not None:
            self._metrics.post(body)

    def close(self) -> None:
        """Shutdown: send what is queued and the metrics, then stop the thread."""
        self._closed = True
        self._thread.stop(timeout_s=self.settings.timeout_s + 1)
        self._traces.close()
        self._metrics.close()
