"""OpenTelemetry export: one span per gateway call (GenAI semantic conventions) and the GenAI
client metrics, sent over OTLP/HTTP by background threads (batched, off the request path).

Imported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`telemetry.Telemetry`), so a gateway
without a collector pays nothing. The exporters read the standard `OTEL_*` variables themselves
(endpoint, headers, timeouts, `OTEL_BSP_*` batching). The span is written when the call ends,
with the call's real start time: the request path never holds an open span.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from gateway.hotpath.call import Call

# Our endpoint -> `gen_ai.operation.name`.
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
# Our provider ids -> `gen_ai.provider.name` well-known values (others pass as they are).
PROVIDERS = {
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai",
    "mistral": "mistral_ai",
}
_PROPAGATOR = TraceContextTextMapPropagator()


class OtelExport:
    def __init__(self) -> None:
        resource = Resource.create(
            {"service.name": os.environ.get("OTEL_SERVICE_NAME") or "alephant-gateway"}
        )
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.tracer_provider.get_tracer("alephant.gateway")
        # The GenAI client metrics cost about half of the export CPU (the SDK's per-record
        # attribute hashing): `OTEL_METRICS_EXPORTER=none` keeps only the spans.
        self.metrics_on = os.environ.get("OTEL_METRICS_EXPORTER", "otlp").lower() != "none"
        readers = [PeriodicExportingMetricReader(OTLPMetricExporter())] if self.metrics_on else []
        self.meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        meter = self.meter_provider.get_meter("alephant.gateway")
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per call."
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Call duration."
        )

    def export(self, call: Call, scope: dict | None, *, reason: str) -> None:
        """`reason`: why the gateway refused the call (`telemetry.refusal_reason`), or ''."""
        end_ns = time.time_ns()
        elapsed = time.perf_counter() - call.started
        operation = OPERATIONS.get(call.endpoint, call.endpoint or "unknown")
        events = call.events
        model = events[0]["model"] if events else ""
        # The sampler (OTEL_TRACES_SAMPLER, parent-based by default) decides first: an unsampled
        # call costs a non-recording span and nothing more.
        span = self.tracer.start_span(
            f"{operation} {model}".strip(),
            context=_parent(scope),
            kind=SpanKind.CLIENT,
            start_time=end_ns - int(elapsed * 1e9),
        )
        if span.is_recording():
            span.set_attributes(span_attributes(call, reason=reason))
            if call.status >= 400:
                span.set_status(Status(StatusCode.ERROR, call.error_type or str(call.status)))
                span.set_attribute("error.type", call.error_type or str(call.status))
        span.end(end_time=end_ns)
        if self.metrics_on:
            common = {"gen_ai.operation.name": operation}
            if events:
                provider = events[-1]["provider"]
                common["gen_ai.provider.name"] = PROVIDERS.get(provider, provider)
                common["gen_ai.request.model"] = model
            self.duration.record(elapsed, common)
            for kind in ("input", "output"):
                tokens = sum(e[kind + "_tokens"] for e in events)
                if tokens:
                    self.token_usage.record(tokens, {**common, "gen_ai.token.type": kind})

    def close(self) -> None:
        self.tracer_provider.shutdown()  # flushes the batch
        self.meter_provider.shutdown()


def _parent(scope: dict | None) -> Context | None:
    """The caller's trace (W3C `traceparent`/`tracestate`), so the call joins it."""
    if scope is None:
        return None
    carrier = {}
    for name, value in scope.get("headers") or ():
        if name in (b"traceparent", b"tracestate"):
            carrier[name.decode()] = value.decode("latin-1")
    return _PROPAGATOR.extract(carrier) if carrier else None


def span_attributes(call: Call, *, reason: str) -> dict[str, Any]:
    """GenAI semantic-convention attributes, plus ours as `alephant.*`."""
    events = call.events
    first = events[0] if events else {}
    last = events[-1] if events else {}
    who = call.who
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATIONS.get(call.endpoint, call.endpoint or "unknown"),
        "alephant.request_id": call.request_id,
        "alephant.status_code": call.status,
        "alephant.attempts": call.attempts,
        "alephant.cost_usd": str(call.cost),
        # Proposed (not yet in the GenAI conventions): the call's cost.
        "gen_ai.usage.cost.amount": float(call.cost),
        "gen_ai.usage.cost.currency": "USD",
    }
    if last:
        attrs["gen_ai.provider.name"] = PROVIDERS.get(last["provider"], last["provider"])
        attrs["gen_ai.request.model"] = first["model"]
        attrs["gen_ai.response.model"] = last["model"]
        for attr, field in (
            ("gen_ai.usage.input_tokens", "input_tokens"),
            ("gen_ai.usage.output_tokens", "output_tokens"),
            ("gen_ai.usage.cache_read.input_tokens", "cached_tokens"),
            ("gen_ai.usage.reasoning.output_tokens", "reasoning_tokens"),
        ):
            attrs[attr] = sum(int(e[field]) for e in events)
        attrs["alephant.cache_hit"] = bool(last["cache_hit"])
    if call.key:
        attrs["alephant.workspace_id"] = int(call.key["workspace_id"])
        if call.key.get("key_id") is not None:
            attrs["alephant.gateway_key_id"] = int(call.key["key_id"])
    if who is not None:
        if who.session_id:
            attrs["gen_ai.conversation.id"] = who.session_id
        if who.agent_id is not None:
            attrs["gen_ai.agent.id"] = str(who.agent_id)
            agents = call.key.get("member_agents") or {}
            name = next((s for s, a in agents.items() if a.get("agent_id") == who.agent_id), "")
            if name:
                attrs["gen_ai.agent.name"] = str(name)
        if who.member_id is not None:
            attrs["alephant.member_id"] = int(who.member_id)
        if who.department_id is not None:
            attrs["alephant.department_id"] = int(who.department_id)
    if reason:
        attrs["alephant.refusal_reason"] = reason
    return attrs
