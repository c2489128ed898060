"""The hand-written OTLP encoding (`gateway/hotpath/otlp.py`, `otelspans.py`, `otelmetrics.py`)
decoded with `opentelemetry-proto`, the reference schema: random attribute values, ids, times,
token counts and costs round-trip to the same values (hypothesis)."""

from __future__ import annotations

import math
import time
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from gateway.hotpath import otlp
from gateway.hotpath.call import Call
from gateway.hotpath.otelmetrics import DURATION_BOUNDS, TOKEN_BOUNDS, GenAiMetrics
from gateway.hotpath.otelspans import SpanEncoder
from gateway.hotpath.routing import Attribution
from tests.gateway.otlpreceiver import attrs

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
KEYS = st.text(min_size=1, max_size=150)
VALUES = st.one_of(
    st.text(max_size=300), st.booleans(), INT64, st.floats(allow_nan=False)
)  # fmt: skip
NON_NEGATIVE = st.integers(min_value=0, max_value=2**62)
TOKENS = st.integers(min_value=0, max_value=2**60)  # three events' sum still fits an int64


def _decoded_value(kv: KeyValue):
    kind = kv.value.WhichOneof("value")
    assert kind is not None, "an attribute without a value"
    return getattr(kv.value, kind)


@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_any_attributes_round_trip(values):
    span = Span.FromString(otlp.attributes(9, values))
    decoded = {kv.key: _decoded_value(kv) for kv in span.attributes}
    assert decoded == values
    for kv in span.attributes:  # the type survives too: a bool is no int, an int no float
        assert type(_decoded_value(kv)) is type(values[kv.key])


@given(KEYS, st.text(max_size=300), INT64, st.booleans(), st.floats(allow_nan=True))
def test_the_cached_attribute_encoders_match_the_reference(key, text, number, flag, real):
    attr = otlp.Attr(key)
    for encoded, expected in (
        (attr.str_(text), text),
        (attr.int_(number), number),
        (attr.int_(number), number),  # the second time from the cache
        (attr.bool_(flag), flag),
        (attr.cached(text), text),
    ):
        [kv] = Span.FromString(encoded).attributes
        assert kv.key == key
        assert _decoded_value(kv) == expected
        assert type(_decoded_value(kv)) is type(expected)
    [kv] = Span.FromString(attr.double_(real)).attributes
    assert kv.value.double_value == real or (math.isnan(real) and math.isnan(kv.value.double_value))
    assert otlp.varint(number) == otlp.varint(number % 2**64)


def _call(rng_ids, session, agent, events, cost, status, attempts) -> Call:
    call = Call("req_" + rng_ids.hex(), "chat", "openai", time.perf_counter(), time.time())
    call.key = {"workspace_id": 41, "key_id": 9, "member_agents": {"my-bot": {"agent_id": 77}}}
    call.who = Attribution(5, 6, agent, session, "", "", {})
    call.events, call.cost, call.status, call.attempts = events, cost, status, attempts
    call.error_type = "budget_exceeded" if status == 402 else ""
    return call


EVENT = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(["openai", "gemini", "custom-x"]),
        "model": st.text(min_size=1, max_size=80),
        "input_tokens": TOKENS,
        "output_tokens": TOKENS,
        "cached_tokens": TOKENS,
        "reasoning_tokens": TOKENS,
        "cache_hit": st.booleans(),
    }
)


@settings(max_examples=150, deadline=None)
@given(
    ids=st.binary(min_size=24, max_size=24),
    request_ids=st.binary(min_size=12, max_size=12),
    session=st.text(max_size=200),
    agent=st.sampled_from([None, 77, 78]),
    events=st.lists(EVENT, max_size=3),
    cost=st.decimals(min_value=0, max_value=10**6, allow_nan=False, places=12),
    status=st.sampled_from([200, 402, 499, 502]),
    attempts=st.integers(min_value=0, max_value=300),
    start_end=st.tuples(NON_NEGATIVE, st.integers(min_value=0, max_value=10**11)),
    parent=st.one_of(st.none(), st.binary(min_size=24, max_size=24)),
    low=st.one_of(st.none(), st.integers(min_value=0, max_value=2**64 - 1)),
    state=st.one_of(st.none(), st.binary(max_size=300)),
)
def test_a_span_round_trips_through_the_reference_decoder(
    ids, request_ids, session, agent, events, cost, status, attempts, start_end, parent, low, state
):
    call = _call(request_ids, session, agent, events, cost, status, attempts)
    end_ns, elapsed_ns = start_end[0] + start_end[1], start_end[1]
    trace: object = low if parent is None else parent[:16]
    record = (
        end_ns, elapsed_ns / 1e9, trace, parent and parent[16:], parent and state,
        call.endpoint, call.events, call.key, call.who, call.request_id, call.status,
        call.attempts, call.cost, call.error_type, "budget" if status == 402 else "",
    )  # fmt: skip
    body = otlp.traces_request(otlp.resource({"service.name": "t"}), otlp.scope("s"), [
        SpanEncoder().span(record, ids[:8], ids[8:])
    ])  # fmt: skip
    [rs] = ExportTraceServiceRequest.FromString(body).resource_spans
    assert attrs(rs.resource) == {"service.name": "t"}
    [ss] = rs.scope_spans
    assert ss.scope.name == "s"
    [span] = ss.spans
    assert span.span_id == ids[:8]
    if parent is not None:
        assert span.trace_id == parent[:16] and span.parent_span_id == parent[16:]
        assert span.trace_state == (state.decode() if state and state.isascii() else "")
        assert span.flags == 0x301
    else:
        expected = ids[8:] if low is None else ids[8:16] + low.to_bytes(8, "big")
        assert span.trace_id == expected and span.parent_span_id == b""
        assert span.flags == 0x101
    assert span.end_time_unix_nano == end_ns
    assert abs(span.start_time_unix_nano - (end_ns - elapsed_ns)) <= 1  # float seconds
    assert span.kind == Span.SPAN_KIND_CLIENT
    _check_attributes(span, call)


def _check_attributes(span: Span, call: Call) -> None:
    got = attrs(span)
    events = call.events
    expected: dict = {
        "gen_ai.operation.name": "chat",
        "alephant.request_id": call.request_id,
        "alephant.status_code": call.status,
        "alephant.attempts": call.attempts,
        "alephant.cost_usd": str(call.cost),
        "gen_ai.usage.cost.amount": float(call.cost),
        "gen_ai.usage.cost.currency": "USD",
        "alephant.workspace_id": 41,
        "alephant.gateway_key_id": 9,
        "alephant.member_id": 5,
        "alephant.department_id": 6,
    }
    if events:
        provider = events[-1]["provider"]
        expected["gen_ai.provider.name"] = "gcp.gemini" if provider == "gemini" else provider
        expected["gen_ai.request.model"] = events[0]["model"]
        expected["gen_ai.response.model"] = events[-1]["model"]
        for attr, name in (
            ("gen_ai.usage.input_tokens", "input_tokens"),
            ("gen_ai.usage.output_tokens", "output_tokens"),
            ("gen_ai.usage.cache_read.input_tokens", "cached_tokens"),
            ("gen_ai.usage.reasoning.output_tokens", "reasoning_tokens"),
        ):
            expected[attr] = sum(e[name] for e in events)
        expected["alephant.cache_hit"] = events[-1]["cache_hit"]
    assert call.who is not None
    if call.who.session_id:
        expected["gen_ai.conversation.id"] = call.who.session_id
    if call.who.agent_id is not None:
        expected["gen_ai.agent.id"] = str(call.who.agent_id)
        if call.who.agent_id == 77:
            expected["gen_ai.agent.name"] = "my-bot"
    if call.status == 402:
        expected["alephant.refusal_reason"] = "budget"
    if call.status >= 400:
        expected["error.type"] = call.error_type or str(call.status)
        assert span.status.code == Status.STATUS_CODE_ERROR
        assert span.status.message == expected["error.type"]
    else:
        assert span.status.code == Status.STATUS_CODE_UNSET
    assert got == expected
    assert span.name == (f"chat {events[0]['model']}".strip() if events else "chat")


def test_metrics_are_cumulative_histograms_with_the_conventions_buckets():
    metrics = GenAiMetrics()
    ok = _call(b"1" * 12, "", None, [], Decimal(0), 200, 1)
    ok.events = [{"provider": "openai", "model": "m", "input_tokens": 10, "output_tokens": 300}]
    refused = _call(b"2" * 12, "", None, list(ok.events), Decimal(0), 402, 0)
    metrics.record(ok, 0.05)
    metrics.record(ok, 3.0)
    metrics.record(refused, 0.001)
    body = metrics.body(otlp.resource({"service.name": "t"}), otlp.scope("s"))
    assert body is not None
    [rm] = ExportMetricsServiceRequest.FromString(body).resource_metrics
    [sm] = rm.scope_metrics
    found = {m.name: m for m in sm.metrics}
    duration = found["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    assert duration.histogram.aggregation_temporality == 2  # cumulative
    points = {attrs(p).get("error.type", ""): p for p in duration.histogram.data_points}
    assert list(points["budget_exceeded"].explicit_bounds) == list(DURATION_BOUNDS)
    good = points[""]
    assert attrs(good) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "m",
    }
    assert good.count == 2 and math.isclose(good.sum, 3.05)
    assert good.min == 0.05 and good.max == 3.0
    assert good.bucket_counts[3] == 1 and good.bucket_counts[9] == 1  # (0.04, 0.08], (2.56, 5.12]
    assert sum(good.bucket_counts) == 2 and len(good.bucket_counts) == len(DURATION_BOUNDS) + 1
    tokens = found["gen_ai.client.token.usage"]
    # The refused call's tokens add to the same series: token usage carries no error.type.
    by_type = {attrs(p)["gen_ai.token.type"]: p for p in tokens.histogram.data_points}
    assert by_type["input"].count == 3 and by_type["input"].sum == 30
    assert by_type["output"].sum == 900 and by_type["output"].max == 300
    assert list(by_type["output"].explicit_bounds) == list(TOKEN_BOUNDS)
    assert by_type["output"].bucket_counts[5] == 3  # (256, 1024]
