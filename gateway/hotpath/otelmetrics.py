"""The GenAI client metrics `gen_ai.client.operation.duration` and `gen_ai.client.token.usage`:
explicit-bucket histograms added to in-process on the request path (one dict lookup and a few
additions per call) and encoded as OTLP cumulative histograms once per export interval.

One accumulator per (endpoint, provider, request model, error type) holds all three histograms
(duration, input tokens, output tokens) side by side, so a call costs one lookup. Only the event
loop writes it; the export thread reads copies (a list copy is one step under the GIL, so a
reader never sees a half-grown list; at worst a sum one call ahead of its buckets, which the next
export corrects; the count is always the sum of the buckets).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from gateway.hotpath import otlp
from gateway.hotpath.otelspans import OPERATIONS, PROVIDERS

if TYPE_CHECKING:
    from gateway.hotpath.call import Call

# The GenAI conventions' advised bucket boundaries.
DURATION_BOUNDS = tuple(0.01 * 2**i for i in range(14))  # 0.01, 0.02, 0.04, ... 81.92
TOKEN_BOUNDS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864
_WIDTH = 3 + len(DURATION_BOUNDS) + 1  # sum, min, max, buckets (the same count for tokens)
_IN, _OUT = _WIDTH, 2 * _WIDTH  # where the input and output token histograms start
_INF = float("inf")


def _new() -> list:
    acc: list = [0.0, _INF, -_INF] + [0] * (_WIDTH - 3)
    return acc * 3


class GenAiMetrics:
    def __init__(self) -> None:
        self.start_ns = time.time_ns()
        self.series: dict[tuple, list] = {}

    def record(self, call: Call, elapsed: float) -> None:
        """The request path: add one call (written for speed: inline, one lookup)."""
        events = call.events
        status = call.status
        error = (call.error_type or str(status)) if status >= 400 else ""
        if events:
            last = events[-1]
            key: tuple = (call.endpoint, last["provider"], events[0]["model"], error)
        else:
            key = (call.endpoint, "", "", error)
        acc = self.series.get(key)
        if acc is None:
            acc = self.series[key] = _new()
        acc[0] += elapsed
        if elapsed < acc[1]:
            acc[1] = elapsed
        if elapsed > acc[2]:
            acc[2] = elapsed
        acc[3 + bisect_left(DURATION_BOUNDS, elapsed)] += 1
        if not events:
            return
        if len(events) == 1:
            n_in, n_out = last["input_tokens"], last["output_tokens"]
        else:
            n_in = sum(e["input_tokens"] for e in events)
            n_out = sum(e["output_tokens"] for e in events)
        if n_in:  # unrolled for the two kinds: a loop here costs more than its body
            acc[_IN] += n_in
            if n_in < acc[_IN + 1]:
                acc[_IN + 1] = n_in
            if n_in > acc[_IN + 2]:
                acc[_IN + 2] = n_in
            acc[_IN + 3 + bisect_left(TOKEN_BOUNDS, n_in)] += 1
        if n_out:
            acc[_OUT] += n_out
            if n_out < acc[_OUT + 1]:
                acc[_OUT + 1] = n_out
            if n_out > acc[_OUT + 2]:
                acc[_OUT + 2] = n_out
            acc[_OUT + 3 + bisect_left(TOKEN_BOUNDS, n_out)] += 1

    def body(self, resource: bytes, scope: bytes) -> bytes | None:
        """The ExportMetricsServiceRequest of the totals so far (None before any call)."""
        now = time.time_ns()
        series = [(key, acc[:]) for key, acc in list(self.series.items())]
        if not series:
            return None
        durations: list[bytes] = []
        tokens: dict[tuple, list] = {}
        for key, acc in series:
            durations.append(
                self._point(_attrs(key, error=key[3]), acc[:_WIDTH], DURATION_BOUNDS, now)
            )
            for at, kind in ((_IN, "input"), (_OUT, "output")):
                # Token usage has no error.type: the series differing only by it add up.
                part = acc[at : at + _WIDTH]
                seen = tokens.setdefault((*key[:3], kind), part)
                if seen is not part:
                    seen[0] += part[0]
                    seen[1], seen[2] = min(seen[1], part[1]), max(seen[2], part[2])
                    for i in range(3, _WIDTH):
                        seen[i] += part[i]
        token_points = [
            self._point({**_attrs(key), "gen_ai.token.type": key[3]}, acc, TOKEN_BOUNDS, now)
            for key, acc in tokens.items()
        ]
        metrics = [
            otlp.histogram_metric(
                "gen_ai.client.operation.duration", "s", "GenAI operation duration.", durations
            ),
            otlp.histogram_metric(
                "gen_ai.client.token.usage",
                "{token}",
                "Number of input and output tokens used.",
                [p for p in token_points if p],
            ),
        ]
        return otlp.metrics_request(resource, scope, metrics)

    def _point(self, attrs: dict[str, Any], acc: list, bounds: tuple, now: int) -> bytes:
        total, low, high, *counts = acc
        if not sum(counts):
            return b""
        return otlp.histogram_point(
            otlp.attributes(9, attrs), self.start_ns, now, float(total), bounds, counts, low, high
        )


def _attrs(key: tuple, *, error: str = "") -> dict[str, Any]:
    endpoint, provider, model = key[:3]
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(endpoint, endpoint or "unknown")
    }
    if provider:
        attrs["gen_ai.provider.name"] = PROVIDERS.get(provider, provider)
        attrs["gen_ai.request.model"] = model
    if error:
        attrs["error.type"] = error
    return attrs
