"""`OtelExport` in one process against a real OTLP/HTTP receiver (decoding with
opentelemetry-proto): sampling (parent-based, ratio, off), the bounded queue that drops and
counts, batches posted by the background thread, a collector that fails and recovers, shutdown
flushing, and the standard `OTEL_*` settings."""

from __future__ import annotations

import os
import random
import time
from decimal import Decimal

import pytest

from gateway.hotpath.call import Call
from gateway.hotpath.config import Config
from gateway.hotpath.otel import OtelExport, parse_traceparent
from gateway.hotpath.otlpexport import Settings
from gateway.hotpath.routing import Attribution
from gateway.hotpath.telemetry import Telemetry
from tests.gateway.otlpreceiver import OtlpReceiver, attrs
from tests.gateway.servers import wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def receiver():
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


def _settings(receiver: OtlpReceiver, **kw) -> Settings:
    base = {
        "traces_url": receiver.url + "/v1/traces",
        "metrics_url": receiver.url + "/v1/metrics",
        "schedule_delay_s": 0.05,
        "metric_interval_s": 0.1,
    }
    return Settings(**{**base, **kw})


def _call(i: int = 0) -> Call:
    call = Call(f"req_{i}", "chat", "openai", time.perf_counter() - 0.01, time.time())
    call.key = {"workspace_id": 3, "key_id": 4}
    call.who = Attribution(1, 2, None, "", "", "", {})
    call.cost, call.attempts = Decimal("0.000123"), 1
    call.events = [
        {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 7, "output_tokens": 9,
         "cached_tokens": 0, "reasoning_tokens": 0, "cache_hit": False, "status_code": 200,
         "cost_usd": "0.000123", "saved_usd": "0", "error_type": ""}
    ]  # fmt: skip
    return call


def _scope(flags: str | None = None, state: bytes | None = None) -> dict:
    headers = [(b"host", b"gw"), (b"content-type", b"application/json")]
    if flags is not None:
        headers.append((b"traceparent", f"00-{TRACE}-{PARENT}-{flags}".encode()))
    if state is not None:
        headers.append((b"tracestate", state))
    return {"headers": headers}


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (f"00-{TRACE}-{PARENT}-01", (bytes.fromhex(TRACE), bytes.fromhex(PARENT), 1)),
        (f" 00-{TRACE}-{PARENT}-00 ", (bytes.fromhex(TRACE), bytes.fromhex(PARENT), 0)),
        (f"01-{TRACE}-{PARENT}-01-future", (bytes.fromhex(TRACE), bytes.fromhex(PARENT), 1)),
        (f"00-{TRACE}-{PARENT}-01-extra", None),  # version 00 has exactly four fields
        (f"ff-{TRACE}-{PARENT}-01", None),
        (f"00-{'0' * 32}-{PARENT}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{PARENT}-01", None),
        ("garbage", None),
    ],
)
def test_parse_traceparent(value, parsed):
    assert parse_traceparent(value.encode()) == parsed


def test_spans_join_the_callers_trace_and_the_sampled_flag_decides(receiver):
    otel = OtelExport(_settings(receiver))
    try:
        otel.export(_call(1), _scope("01", b"vendor=abc"), reason="")
        otel.export(_call(2), _scope("00"), reason="")  # the caller did not sample: nothing
        otel.export(_call(3), None, reason="")  # a root call: its own trace
        assert wait_until(lambda: len(receiver.spans) == 2, timeout=5)
        joined, root = sorted(receiver.spans, key=lambda s: attrs(s)["alephant.request_id"])
        assert attrs(joined)["alephant.request_id"] == "req_1"
        assert joined.trace_id.hex() == TRACE and joined.parent_span_id.hex() == PARENT
        assert joined.trace_state == "vendor=abc"
        assert root.trace_id.hex() != TRACE and root.parent_span_id == b""
        assert len(root.trace_id) == 16 and len(root.span_id) == 8
        assert joined.span_id != root.span_id
        assert receiver.resources[0].attributes[0].key == "service.name"
        # The metrics count every call, sampled or not.
        assert wait_until(lambda: receiver.latest_metrics(), timeout=5)
        assert wait_until(lambda: receiver.latest_metrics()[
            "gen_ai.client.operation.duration"][0].count == 3, timeout=5)  # fmt: skip
    finally:
        otel.close()


def test_ratio_sampling_at_the_root_and_nothing_queued_for_an_unsampled_call(receiver):
    otel = OtelExport(
        _settings(receiver, sampler="parentbased_traceidratio", sampler_arg=0.1,
                  schedule_delay_s=3600, batch_size=10**6)
    )  # fmt: skip
    try:
        random.seed(1234)  # the draw uses the module's generator: a fixed seed, a fixed count
        for i in range(2000):
            otel.export(_call(i), _scope(), reason="")
        sampled = len(otel.queue)
        assert 140 < sampled < 260  # binomial(2000, 0.1): mean 200, sd 13.4
        # Every queued root span's trace id will end in its draw, below the bound.
        assert all(r[2] < otel.bound for r in otel.queue)
        otel.export(_call(), _scope("01"), reason="")  # a sampled caller still wins
        assert len(otel.queue) == sampled + 1
        assert otel.drain() == sampled + 1
        assert wait_until(lambda: len(receiver.spans) == sampled + 1, timeout=5)
        for span in receiver.spans:
            if span.parent_span_id == b"":
                assert int.from_bytes(span.trace_id[8:], "big") < otel.bound
    finally:
        otel.close()


@pytest.mark.parametrize(
    ("sampler", "flags", "queued"),
    [
        ("always_off", None, 0),
        ("always_off", "01", 0),  # not parent-based: the caller's flag does not count
        ("parentbased_always_off", "01", 1),
        ("parentbased_always_off", None, 0),
        ("always_on", "00", 1),
        ("traceidratio", "00", 0),  # ratio 0 on the caller's trace id
    ],
)
def test_samplers(receiver, sampler, flags, queued):
    otel = OtelExport(_settings(receiver, sampler=sampler, sampler_arg=0.0, schedule_delay_s=3600))
    try:
        otel.export(_call(), _scope(flags), reason="")
        assert len(otel.queue) == queued
    finally:
        otel.close()


def test_a_full_queue_drops_and_counts_and_a_failing_collector_is_counted(receiver):
    receiver.status = 503
    telemetry = Telemetry(Config("k"))
    telemetry.otel = otel = OtelExport(
        _settings(receiver, max_queue=5, batch_size=100, schedule_delay_s=3600)
    )
    try:
        for i in range(8):
            telemetry.record(_call(i), _scope())
        assert len(otel.queue) == 5 and otel.dropped == 3
        assert otel.drain() == 5  # the collector answers 503: the batch is dropped, counted
        assert otel.failed == 5 and receiver.posts == 1
        receiver.status = 200  # it recovers: the next batch goes through
        telemetry.record(_call(9), _scope())
        otel.drain()
        assert len(receiver.spans) == 1 and otel.failed == 5
        telemetry.flush()
        value = telemetry.registry.get_sample_value
        assert value("alephant_otel_dropped_spans_total", {"reason": "queue_full"}) == 3
        assert value("alephant_otel_dropped_spans_total", {"reason": "export_failed"}) == 5
        telemetry.flush()  # running totals become deltas: nothing counted twice
        assert value("alephant_otel_dropped_spans_total", {"reason": "queue_full"}) == 3
    finally:
        otel.close()


def test_a_span_that_cannot_be_encoded_is_skipped_not_its_batch(receiver):
    otel = OtelExport(_settings(receiver, schedule_delay_s=3600))
    try:
        bad = _call(2)
        bad.events = [{**bad.events[0], "cached_tokens": "many"}]
        for call in (_call(1), bad, _call(3)):
            otel.export(call, None, reason="")
        assert otel.drain() == 3
        assert otel.failed == 1
        assert [attrs(s)["alephant.request_id"] for s in receiver.spans] == ["req_1", "req_3"]
    finally:
        otel.close()


def test_a_collector_that_is_down_never_stops_the_thread_and_close_flushes(receiver):
    down = Settings(traces_url="http://127.0.0.1:9/v1/traces", schedule_delay_s=0.02)
    otel = OtelExport(down)
    otel.export(_call(), None, reason="")
    assert wait_until(lambda: otel.failed == 1, timeout=5)
    otel._traces = type(otel._traces)(receiver.url + "/v1/traces", {}, timeout_s=2, gzip_on=True)
    otel.export(_call(5), None, reason="")
    otel.close()  # drains what is left before the thread ends (gzip on: the receiver copes)
    assert [attrs(s)["alephant.request_id"] for s in receiver.spans] == ["req_5"]


def test_a_forked_child_exports_on_its_own_thread_without_the_parents_queue(receiver):
    otel = OtelExport(_settings(receiver, schedule_delay_s=3600))
    try:
        otel.export(_call(1), None, reason="")  # queued in the parent, not yet sent
        pid = os.fork()
        if pid == 0:  # the child: a fresh thread, an empty queue, its own connection
            code = 1
            try:
                otel.export(_call(2), None, reason="")
                otel.close()
                code = 0
            finally:
                os._exit(code)
        assert os.waitpid(pid, 0)[1] == 0
        assert wait_until(lambda: len(receiver.spans) == 1, timeout=5)
        assert [attrs(s)["alephant.request_id"] for s in receiver.spans] == ["req_2"]
    finally:
        otel.close()
    assert wait_until(lambda: len(receiver.spans) == 2, timeout=5)  # the parent's, at close


def test_the_batch_size_wakes_the_thread_before_the_delay(receiver):
    otel = OtelExport(_settings(receiver, schedule_delay_s=3600, batch_size=10))
    try:
        for i in range(10):
            otel.export(_call(i), None, reason="")
        assert wait_until(lambda: len(receiver.spans) == 10, timeout=5)
    finally:
        otel.close()


def test_settings_from_the_standard_variables():
    s = Settings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4318/",
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://m:1/custom",
            "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b, x=1,broken",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_BSP_MAX_QUEUE_SIZE": "99",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "7",
            "OTEL_METRIC_EXPORT_INTERVAL": "not a number",
            "OTEL_TRACES_SAMPLER": "ParentBased_TraceIdRatio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,service.name=ignored",
            "OTEL_SERVICE_NAME": "gw-eu",
        }
    )
    assert s.traces_url == "https://collector:4318/v1/traces"
    assert s.metrics_url == "http://m:1/custom"
    assert s.traces_headers == s.metrics_headers == {"api-key": "a b", "x": "1"}
    assert (s.timeout_s, s.schedule_delay_s, s.max_queue, s.batch_size) == (2.5, 0.2, 99, 7)
    assert s.metric_interval_s == 60.0
    assert (s.sampler, s.sampler_arg) == ("parentbased_traceidratio", 0.25)
    assert s.resource == {"deployment.environment": "prod", "service.name": "gw-eu"}
    assert Settings.from_env({}).traces_url == "http://localhost:4318/v1/traces"
    off = Settings.from_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"})
    assert not off.traces_on and not off.metrics_on
