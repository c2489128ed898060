"""Observability through real gateway processes (issue 18): `/metrics` parsed with
prometheus_client's own text parser after real calls through two gateway processes sharing one
multiprocess directory, the bearer token, bounded labels, budget gauges from Redis, and the
OpenTelemetry spans a local OTLP/HTTP receiver decodes (GenAI attributes, traceparent joined).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from billing.services.budgets import budget_create
from tests.gateway.otlpreceiver import OtlpReceiver
from tests.gateway.otlpreceiver import attrs as attributes_of
from tests.gateway.servers import ROOT, snapshots_expire, stack_start, wait_until
from workspaces.tenancy import workspace_scope

TOKEN = "metrics-test-token-0001"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
# Labels a series may carry: nothing per person, per session or per property.
ALLOWED_LABELS = {
    "route", "provider", "model", "status", "reason", "kind", "error_type", "le",
    "budget_id", "scope_type", "period", "unit",
}  # fmt: skip


@pytest.fixture(scope="module")
def observed(gateway_stack, tmp_path_factory):
    """Two gateway processes with metrics (one multiprocess dir), a token and OTel export."""
    receiver = OtlpReceiver().start()
    env = dict(gateway_stack.env)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path_factory.mktemp("prom"))
    env["ALEPHANT_METRICS_TOKEN"] = TOKEN
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{receiver.port}"
    env["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    env["OTEL_METRIC_EXPORT_INTERVAL"] = "200"
    env["OTEL_SERVICE_NAME"] = "alephant-test"
    stack = stack_start(env, gateway_stack.sim_url, gateways=2)
    yield stack, receiver
    stack.stop()
    receiver.stop()


def _scrape(base: str, token: str | None = TOKEN) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(base + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    samples: dict = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _chat(base: str, key: str, body: dict = CHAT, **headers) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}", **headers}
    return httpx.post(base + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_metrics_want_the_bearer_token(observed):
    stack, _receiver = observed
    base = stack.gw_urls[0]
    assert httpx.get(base + "/metrics").status_code == 401
    wrong = httpx.get(base + "/metrics", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert "alephant_" not in wrong.text
    assert httpx.get(base + "/metrics", headers={"authorization": f"Bearer {TOKEN}"}).is_success


def test_counters_and_histograms_after_calls_through_two_workers(observed, gw):
    stack, _receiver = observed
    one, two = stack.gw_urls
    before = _scrape(one)
    ok = [_chat(base, gw.key) for base in (one, one, one, two, two)]
    assert [r.status_code for r in ok] == [200] * 5
    invalid = _chat(two, gw.key, {"model": "gpt-4o-mini", "messages": "not a list"})
    assert invalid.status_code == 400
    records = gw.ledger(status_code=200)
    assert len(records) == 5
    chat = {"route": "chat", "provider": "openai", "model": "gpt-4o-mini"}
    ok_total = {**chat, "status": "200", "reason": ""}
    # Either worker reports both workers' calls: worker one's within FLUSH_SECONDS (0.5 s).
    done = _value(before, "alephant_requests_total", **ok_total) + 5
    wait_until(lambda: _value(_scrape(two), "alephant_requests_total", **ok_total) >= done, 5)
    after = _scrape(two)

    def delta(name: str, **labels) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("alephant_requests_total", **chat, status="200", reason="") == 5
    assert (
        delta(
            "alephant_requests_total",
            route="chat",
            provider="",
            model="",
            status="400",
            reason="validation",
        )
        == 1
    )
    model = {"provider": "openai", "model": "gpt-4o-mini"}
    assert delta("alephant_tokens_total", **model, kind="input") == sum(
        r.input_tokens for r in records
    )
    assert delta("alephant_tokens_total", **model, kind="output") == sum(
        r.output_tokens for r in records
    )
    cost = sum((r.cost_usd for r in records), Decimal(0))
    assert cost > 0
    # A float counter of a few exact Decimals: equal to the ledger to well under a nano-dollar.
    assert delta("alephant_cost_usd_total", **model) == pytest.approx(float(cost), abs=1e-12)
    assert delta("alephant_added_latency_seconds_count", route="chat") == 6
    assert delta("alephant_upstream_latency_seconds_count", **model) == 5
    assert delta("alephant_admission_seconds_count", route="chat") == 5
    assert delta("alephant_upstream_latency_seconds_sum", **model) > 0
    # Retries: none here; upstream errors: none.
    assert not any(name == "alephant_upstream_errors_total" for name, _l in after)


def test_no_member_session_or_property_labels(observed, gw):
    stack, _receiver = observed
    response = _chat(
        stack.gw_urls[0],
        gw.key,
        **{"alephant-session-id": "sess-123", "alephant-property-team": "red"},
    )
    assert response.status_code == 200
    samples = _scrape(stack.gw_urls[0])
    used = {name for _n, labels in samples for name, _v in labels}
    assert used <= ALLOWED_LABELS, used - ALLOWED_LABELS
    values = {v for _n, labels in samples for _k, v in labels}
    assert "sess-123" not in values and "red" not in values
    assert str(gw.cast.member.pk) not in {
        v for _n, labels in samples for k, v in labels if k != "budget_id"
    }


def test_budget_gauges_read_from_redis(observed, gw):
    stack, _receiver = observed
    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        budget = budget_create(
            workspace=ws,
            actor=gw.cast.owner,
            scope_type="workspace",
            amount_usd=Decimal("5"),
            period="month",
        )
    snapshots_expire()
    assert _chat(stack.gw_urls[0], gw.key).status_code == 200
    [record] = gw.ledger(status_code=200)
    samples = _scrape(stack.gw_urls[1])
    labels = {"budget_id": str(budget.pk), "scope_type": "workspace", "period": "month"}
    labels["unit"] = "usd"
    assert _value(samples, "alephant_budget_limit", **labels) == 5.0
    assert _value(samples, "alephant_budget_used", **labels) == pytest.approx(
        float(record.cost_usd), abs=1e-12
    )
    assert _value(samples, "alephant_budget_reserved", **labels) == 0
    assert _value(samples, "alephant_budget_remaining", **labels) == pytest.approx(
        float(Decimal(5) - record.cost_usd), abs=1e-12
    )
    assert ("alephant_usage_queue_length", ()) in samples
    assert ("alephant_ledger_lag_events", ()) in samples


def test_a_span_per_call_with_genai_attributes_joins_the_callers_trace(observed, gw):
    stack, receiver = observed
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    response = _chat(
        stack.gw_urls[1],
        gw.key,
        traceparent=f"00-{trace_id}-{parent_id}-01",
        **{"alephant-session-id": "conv-42"},
    )
    assert response.status_code == 200
    request_id = response.headers["alephant-request-id"]

    def span():
        for s in receiver.spans:
            attrs = {a.key: a.value for a in s.attributes}
            if attrs.get("alephant.request_id") and attrs["alephant.request_id"].string_value == (
                request_id
            ):
                return s, attrs
        return None

    found = wait_until(span, timeout=10)
    assert found, "no span exported"
    s, attrs = found
    assert s.trace_id.hex() == trace_id
    assert s.parent_span_id.hex() == parent_id
    assert s.name == "chat gpt-4o-mini"
    [record] = gw.ledger(request_id=request_id)
    assert attrs["gen_ai.operation.name"].string_value == "chat"
    assert attrs["gen_ai.provider.name"].string_value == "openai"
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o-mini"
    assert attrs["gen_ai.response.model"].string_value == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"].int_value == record.input_tokens
    assert attrs["gen_ai.usage.output_tokens"].int_value == record.output_tokens
    assert attrs["gen_ai.usage.cache_read.input_tokens"].int_value == record.cached_tokens
    assert "gen_ai.usage.reasoning.output_tokens" in attrs
    assert attrs["gen_ai.conversation.id"].string_value == "conv-42"
    assert Decimal(attrs["alephant.cost_usd"].string_value) == record.cost_usd
    assert attrs["gen_ai.usage.cost.currency"].string_value == "USD"
    assert attrs["alephant.workspace_id"].int_value == gw.cast.workspace.pk
    assert attrs["alephant.member_id"].int_value == gw.cast.member.pk
    assert s.end_time_unix_nano > s.start_time_unix_nano
    # The GenAI client metrics are exported too (cumulative histograms, every 200 ms here).
    chat = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
    chat["gen_ai.request.model"] = "gpt-4o-mini"

    def token_points():
        points = receiver.latest_metrics().get("gen_ai.client.token.usage", [])
        found = [(attributes_of(p), p) for p in points]
        return {a["gen_ai.token.type"]: p for a, p in found if a.items() >= chat.items()}

    assert wait_until(lambda: "output" in token_points(), timeout=5)
    output = token_points()["output"]
    assert output.count >= 1 and output.sum >= record.output_tokens
    durations = receiver.latest_metrics()["gen_ai.client.operation.duration"]
    assert any(attributes_of(p) == chat and p.count >= 1 and p.sum > 0 for p in durations)


def test_grafana_dashboard_queries_only_series_the_gateway_exports(observed, gw):
    """docs/grafana-alephant.json loads as JSON and every `alephant_*` name it queries is one a
    scrape returns (after a call, with a budget so the budget gauges exist)."""
    stack, _receiver = observed
    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        budget_create(
            workspace=ws, actor=gw.cast.owner, scope_type="workspace",
            amount_usd=Decimal("5"), period="day",
        )  # fmt: skip
    snapshots_expire()
    assert _chat(stack.gw_urls[0], gw.key).status_code == 200
    exported = {name for name, _labels in _scrape(stack.gw_urls[0])}
    dashboard = json.loads((ROOT / "docs" / "grafana-alephant.json").read_text())
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= set(re.findall(r"alephant_[a-z_]+", target["expr"]))
    assert queried, "no queries"
    # Cache and upstream-error series exist once such a call happened; the names are checked
    # against what the gateway defines instead.
    lazily = {"alephant_cache_hits_total", "alephant_cache_savings_usd_total"}
    lazily |= {"alephant_upstream_errors_total", "alephant_upstream_retries_total"}
    assert queried - exported <= lazily, queried - exported


def test_retries_upstream_errors_refusals_and_streams_are_counted(observed, gw):
    stack, _receiver = observed
    base = stack.gw_urls[0]
    before = _scrape(base)
    # The simulator fails the first attempt (500, retryable); the gateway's one retry answers.
    flaky = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "[[sim:fail=500]] [[sim:times=1]] retry me"}]}  # fmt: skip
    assert _chat(base, gw.key, flaky).status_code == 200
    streamed = httpx.post(
        base + "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"authorization": f"Bearer {gw.key}"},
        timeout=30,
    )
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        budget_create(
            workspace=ws, actor=gw.cast.owner, scope_type="workspace",
            amount_usd=Decimal("0.000001"), period="month",
        )  # fmt: skip
    snapshots_expire()
    refused = _chat(base, gw.key)
    assert refused.status_code == 402, refused.text
    after = _scrape(base)

    def delta(name: str, **labels) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    model = {"provider": "openai", "model": "gpt-4o-mini"}
    # The provider's 500 is recorded as the gateway's 502 `upstream_error` attempt.
    [failed] = [r for r in gw.ledger() if r.error_type == "upstream_error"]
    errors = delta("alephant_upstream_errors_total", **model, error_type=failed.error_type)
    assert errors == 1
    assert delta("alephant_upstream_retries_total", provider="openai") == 1
    assert delta("alephant_requests_total", route="chat", **model, status="200", reason="") == 2
    refusal = {"route": "chat", **model, "status": "402", "reason": "budget"}
    assert delta("alephant_requests_total", **refusal) == 1
    # Two calls reached the provider (the retried one counts once), the refused one did not.
    assert delta("alephant_upstream_latency_seconds_count", **model) == 2
    assert delta("alephant_admission_seconds_count", route="chat") == 3
    assert delta("alephant_added_latency_seconds_count", route="chat") == 3
