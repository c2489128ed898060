"""The per-call telemetry hook as a unit: refusal reasons, the JSON log line (no secret, no
prompt unless asked), the workspace label only when asked, and the metrics token check."""

from __future__ import annotations

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
    sample = per_ws.registry.get_sample_value(
        "alephant_cost_usd_total", {"workspace": "7", **model}
    )
    assert sample == 0.000015


def test_metrics_token():
    assert authorized("", [])
    assert not authorized("tok", [])
    assert not authorized("tok", [(b"authorization", b"Bearer tok2")])
    assert authorized("tok", [(b"authorization", b"Bearer tok")])
