"""The per-call telemetry hook as a unit: refusal reasons, the JSON log line (no secret, no
prompt unless asked), the workspace label only when asked, and the metrics token check."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import orjson
import pytest

from gateway.hotpath.call import Call
from gateway.hotpath.config import Config
from gateway.hotpath.routing import Attribution
from gateway.hotpath.scrape import authorized
from gateway.hotpath.telemetry import Telemetry, refusal_reason

SECRET_PROMPT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"my password"}]}'


def _call(**kw) -> Call:
    call = Call("req_1", "chat", "openai", time.perf_counter(), time.time())
    call.key = {"workspace_id": 7, "key_id": 3}
    call.who = Attribution(11, 12, None, "sess-1", "", "", {"team": "red"})
    call.raw = SECRET_PROMPT
    for name, value in kw.items():
        setattr(call, name, value)
    return call


def _event(**kw) -> dict:
    event = {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "input_tokens": 10,
        "output_tokens": 20,
        "cached_tokens": 4,
        "reasoning_tokens": 0,
        "cost_usd": "0.000015",
        "saved_usd": "0",
        "cache_hit": False,
        "status_code": 200,
        "error_type": "",
    }
    return {**event, **kw}


@pytest.mark.parametrize(
    ("status", "error_type", "attempts", "reason"),
    [
        (402, "budget_exceeded", 0, "budget"),
        (429, "rate_limit_exceeded", 0, "rate"),
        (429, "loop_detected", 0, "loop"),
        (400, "invalid_request_error", 0, "validation"),
        (401, "authentication_error", 0, "auth"),
        (503, "service_unavailable", 0, "other"),
        (429, "rate_limit_exceeded", 1, ""),  # the provider's 429, not ours
        (200, "", 1, ""),
    ],
)
def test_refusal_reason(status, error_type, attempts, reason):
    call = _call(status=status, error_type=error_type, attempts=attempts)
    assert refusal_reason(call) == reason


def test_log_line_has_ids_and_numbers_but_no_prompt_unless_asked():
    call = _call(attempts=1, cost=Decimal("0.000015"))
    call.events.append(_event())
    line = orjson.loads(Telemetry(Config("k", log_format="json")).log_line(call))
    assert line["request_id"] == "req_1"
    assert line["workspace_id"] == 7 and line["member_id"] == 11
    assert line["model"] == "gpt-4o-mini" and line["status"] == 200
    assert line["input_tokens"] == 10 and line["output_tokens"] == 20
    assert line["cost_usd"] == "0.000015"
    assert "password" not in orjson.dumps(line).decode()
    with_body = Telemetry(Config("k", log_format="json", log_bodies=True)).log_line(call)
    assert "my password" in orjson.loads(with_body)["request_body"]


def test_series_without_and_with_the_workspace_label():
    call = _call(attempts=1, upstream_s=0.2, admit_s=0.001, cost=Decimal("0.000015"))
    call.events.append(_event())
    plain = Telemetry(Config("k"))
    plain.record(call)
    plain.flush()
    labels = {"route": "chat", "provider": "openai", "model": "gpt-4o-mini"}
    value = plain.registry.get_sample_value
    assert value("alephant_requests_total", {**labels, "status": "200", "reason": ""}) == 1
    assert value("alephant_tokens_total", {**labels, "kind": "cached"} | {"route": "x"}) is None
    model = {"provider": "openai", "model": "gpt-4o-mini"}
    assert value("alephant_tokens_total", {**model, "kind": "cached"}) == 4
    assert value("alephant_cost_usd_total", model) == 0.000015
    assert value("alephant_upstream_latency_seconds_count", model) == 1
    per_ws = Telemetry(Config("k", metrics_per_workspace=True))
    per_ws.record(call)
    per_ws.flush()
    sample = per_ws.registry.get_sample_value(
        "alephant_cost_usd_total", {"workspace": "7", **model}
    )
    assert sample == 0.000015


def test_record_accumulates_and_a_flush_is_exact():
    """record() only adds to dicts; flush() gives the series exactly what one inc/observe per
    call would have: same counts, same buckets, cost summed as exact decimals."""
    telemetry = Telemetry(Config("k"))
    reference = Telemetry(Config("k"))  # the same calls observed one by one, directly
    model = {"provider": "openai", "model": "gpt-4o-mini"}
    for i, upstream_s in enumerate((0.04, 0.05, 0.3, 7.0, 500.0)):
        call = _call(attempts=2, upstream_s=upstream_s, admit_s=0.0001 * (i + 1))
        call.events.append(_event(cost_usd="0.1", cache_hit=bool(i % 2), saved_usd="0.2"))
        telemetry.record(call)
        reference._child(reference.upstream, ("openai", "gpt-4o-mini")).observe(upstream_s)
        reference._child(reference.admit, ("chat",)).observe(0.0001 * (i + 1))
    value = telemetry.registry.get_sample_value
    ok = {"route": "chat", **model, "status": "200", "reason": ""}
    assert value("alephant_requests_total", ok) is None  # not yet flushed
    telemetry.flush()
    assert value("alephant_requests_total", ok) == 5
    assert value("alephant_upstream_retries_total", {"provider": "openai"}) == 5
    assert value("alephant_cost_usd_total", model) == 0.5  # 5 x 0.1, not 0.5000000000000001
    assert value("alephant_cache_hits_total", model) == 2
    assert value("alephant_cache_savings_usd_total", model) == 0.4
    assert value("alephant_added_latency_seconds_count", {"route": "chat"}) == 5
    for name in ("alephant_upstream_latency_seconds", "alephant_admission_seconds"):
        ours = [s for m in telemetry.registry.collect() if m.name == name for s in m.samples]
        theirs = [s for m in reference.registry.collect() if m.name == name for s in m.samples]
        strip = [(s.name, s.labels, s.value) for s in ours if not s.name.endswith("_created")]
        assert strip == [
            (s.name, s.labels, s.value) for s in theirs if not s.name.endswith("_created")
        ]
    telemetry.flush()  # nothing new: nothing counted twice
    assert value("alephant_requests_total", ok) == 5


def test_the_flush_task_runs_until_close(monkeypatch):
    monkeypatch.setattr("gateway.hotpath.telemetry.FLUSH_SECONDS", 0.01)
    asyncio.run(_flush_task())


async def _flush_task() -> None:
    telemetry = Telemetry(Config("k"))
    telemetry.start()
    telemetry.record(_call(status=402, error_type="budget_exceeded"))
    labels = {"route": "chat", "provider": "", "model": "", "status": "402", "reason": "budget"}
    for _ in range(100):
        await asyncio.sleep(0.01)
        if telemetry.registry.get_sample_value("alephant_requests_total", labels):
            break
    assert telemetry.registry.get_sample_value("alephant_requests_total", labels) == 1
    telemetry.record(_call(status=402, error_type="budget_exceeded"))
    telemetry.close()  # stops the task and flushes what is left
    assert telemetry.registry.get_sample_value("alephant_requests_total", labels) == 2
    assert telemetry._flusher is None


def test_metrics_token():
    assert authorized("", [])
    assert not authorized("tok", [])
    assert not authorized("tok", [(b"authorization", b"Bearer tok2")])
    assert authorized("tok", [(b"authorization", b"Bearer tok")])
