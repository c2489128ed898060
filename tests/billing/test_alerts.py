"""Escalation alerts: ladder crossings signalled by the gateway script, recorded once per
budget, period and step (re-armed at rollover, never duplicated by a second worker), delivered
to email / Slack / signed webhook with retryable errors; test alerts; burn-rate forecast."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis.asyncio as aioredis
from django.conf import settings
from django.core import mail

from billing.models import Alert, Budget, UsageRecord
from billing.services.alerts import (
    alert_channel_create,
    alert_channel_test,
    alert_deliver,
    alert_from_event,
    alerts_drain,
)
from billing.services.budgets import budget_create
from billing.services.forecast import budget_forecast_check
from billing.snapshots import budget_entry
from core.money import NANOS_PER_USD
from core.periods import period_bounds
from gateway.hotpath.admission import AdmitRequest
from gateway.hotpath.enforcer import Enforcer
from workspaces.tenancy import workspace_scope

USD = NANOS_PER_USD


async def _zero(workspace_id, items):
    return [0 for _ in items]


def _spend(workspace, budgets, *, calls: int, cost_usd: str, at: float, prefix: str) -> list:
    """Run `calls` admitted+settled calls through the Enforcer at time `at`."""
    snapshot = {
        "workspace_id": workspace.pk,
        "time_zone": workspace.time_zone,
        "rpm_floor": 1000,
        "budgets": [budget_entry(b) for b in budgets],
        "settings": {},
    }
    cost = int(Decimal(cost_usd) * USD)

    async def run():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        enforcer = Enforcer(client, loader=_zero, clock=lambda: at)
        results = []
        for i in range(calls):
            adm = await enforcer.admit(
                AdmitRequest(
                    f"{prefix}-{i}",
                    workspace.pk,
                    1,
                    None,
                    None,
                    None,
                    "openai",
                    "gpt-4o",
                    10,
                    10,
                    cost,
                    "",
                    None,
                ),
                snapshot,
                {"rpm": None},
            )
            results.append(adm)
            if adm.allowed:
                await enforcer.settle(adm, cost_nanos=cost, tokens=20)
        await client.aclose()
        return results

    return asyncio.run(run())


def _ladder_alerts(workspace):
    return list(Alert.objects.filter(workspace=workspace, kind="ladder").order_by("id"))


def test_ladder_crossings_alert_once_per_step_and_rearm_at_rollover(scoped, redis_client):
    ws = scoped.workspace
    budget = budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="workspace",
        scope_id=ws.pk,
        amount_usd="1.00",
        period="day",
        throttle_rpm=None,
    )
    day1 = 1_790_000_000.0 - (1_790_000_000.0 % 86400) + 3600
    results = _spend(ws, [budget], calls=12, cost_usd="0.10", at=day1, prefix="d1")
    assert [a.allowed for a in results] == [True] * 10 + [False] * 2
    events = redis_client.xrange("alephant:alerts")
    assert sorted(int(f[b"step"]) for _i, f in events) == [50, 75, 90, 100]

    assert alerts_drain(client=redis_client, consumer="worker-1") == 4
    assert alerts_drain(client=redis_client, consumer="worker-1") == 0
    alerts = _ladder_alerts(ws)
    assert [a.step for a in alerts] == [50, 75, 90, 100]
    assert {a.period_key for a in alerts} == {period_bounds("day", "UTC", day1)[0]}
    assert alerts[0].data["spent"] == "0.50" and alerts[0].data["limit"] == "1.00"

    # A second worker handling the same crossings again (redelivered events, or another
    # gateway signalling after a counter rebuild) records nothing new.
    for _id, fields in events:
        redis_client.xadd("alephant:alerts", fields)
    assert alerts_drain(client=redis_client, consumer="worker-2") == 4
    assert len(_ladder_alerts(ws)) == 4

    # Next day: the ladder is re-armed.
    _spend(ws, [budget], calls=10, cost_usd="0.10", at=day1 + 86400, prefix="d2")
    alerts_drain(client=redis_client, consumer="worker-1")
    alerts = _ladder_alerts(ws)
    assert len(alerts) == 8
    assert len({(a.period_key, a.step) for a in alerts}) == 8


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_one_crossing_record_one_alert():
    from tests.cast import build_cast

    cast = build_cast("race-")
    ws = cast.workspace
    with workspace_scope(ws.pk):
        budget = budget_create(
            workspace=ws,
            actor=None,
            scope_type="workspace",
            scope_id=ws.pk,
            amount_usd="5",
            period="month",
        )
    event = {
        "kind": "ladder",
        "workspace_id": str(ws.pk),
        "budget_id": str(budget.pk),
        "period": "m202611",
        "step": "75",
        "spent": str(4 * USD),
        "limit": str(5 * USD),
    }
    barrier = threading.Barrier(4)
    results = []

    def worker(n):
        from django.db import connection

        try:
            barrier.wait()
            with workspace_scope(ws.pk):
                results.append(alert_from_event(f"1-{n}", event))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(1 for r in results if r is not None) == 1
    with workspace_scope(ws.pk):
        assert Alert.objects.filter(workspace=ws, kind="ladder").count() == 1


class _Receiver(BaseHTTPRequestHandler):
    requests: list = []
    statuses: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((dict(self.headers), body))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.requests = []
    _Receiver.statuses = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver
    server.shutdown()
    server.server_close()


def _budget_alert(scoped, **kw):
    ws = scoped.workspace
    budget = budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="member",
        scope_id=scoped.member.pk,
        amount_usd="20",
        period="month",
    )
    return alert_from_event(
        "1-0",
        {
            "kind": "ladder",
            "workspace_id": str(ws.pk),
            "budget_id": str(budget.pk),
            "period": "m202611",
            "step": "90",
            "spent": str(18 * USD),
            "limit": str(20 * USD),
            **kw,
        },
    )


def test_webhook_is_signed_and_retryable_errors_are_reported(
    scoped, receiver, django_capture_on_commit_callbacks
):
    url, handler = receiver
    channel = alert_channel_create(
        workspace=scoped.workspace, actor=scoped.owner, kind="webhook", name="ops", url=url
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        alert = _budget_alert(scoped)
    assert alert is not None and len(callbacks) >= 1  # delivery enqueued on commit
    assert alert.deliveries[0]["status"] == "pending"

    handler.statuses = [503]
    error = alert_deliver(
        workspace_id=scoped.workspace.pk, alert_id=alert.pk, channel_id=channel.pk, attempt=1
    )
    assert error is not None and not error.permanent
    alert.refresh_from_db()
    assert alert.deliveries[0]["status"] == "retrying"

    assert (
        alert_deliver(
            workspace_id=scoped.workspace.pk, alert_id=alert.pk, channel_id=channel.pk, attempt=2
        )
        is None
    )
    alert.refresh_from_db()
    assert alert.deliveries[0]["status"] == "sent" and alert.deliveries[0]["attempts"] == 2

    headers, body = handler.requests[-1]
    signature = headers["Alephant-Signature"]
    ts = signature.split(",")[0].removeprefix("t=")
    expected = hmac.new(
        channel.secret.encode(), f"{ts}.".encode() + body, hashlib.sha256
    ).hexdigest()
    assert signature == f"t={ts},v1={expected}"
    payload = json.loads(body)
    assert payload["type"] == "alert.ladder" and payload["step"] == 90

    handler.statuses = [404]
    error = alert_deliver(
        workspace_id=scoped.workspace.pk, alert_id=alert.pk, channel_id=channel.pk, attempt=3
    )
    assert error is None  # permanent: no retry
    alert.refresh_from_db()
    assert alert.deliveries[0]["status"] == "failed"


def test_slack_and_email_channels(scoped, receiver):
    url, handler = receiver
    slack = alert_channel_create(
        workspace=scoped.workspace, actor=scoped.owner, kind="slack", name="slack", url=url
    )
    email = alert_channel_create(
        workspace=scoped.workspace,
        actor=scoped.owner,
        kind="email",
        name="mail",
        emails=["cfo@partner.example"],
    )
    alert = _budget_alert(scoped)
    for channel in (slack, email):
        assert (
            alert_deliver(
                workspace_id=scoped.workspace.pk, alert_id=alert.pk, channel_id=channel.pk
            )
            is None
        )
    assert "reached 90%" in json.loads(handler.requests[-1][1])["text"]
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == sorted(
        [
            "owner@a.example",
            "admin@a.example",
            "finance@a.example",
            "member@a.example",
            "cfo@partner.example",
        ]
    )


def test_send_test_alert(scoped, receiver):
    url, handler = receiver
    channel = alert_channel_create(
        workspace=scoped.workspace, actor=scoped.owner, kind="webhook", name="ops", url=url
    )
    alert, error = alert_channel_test(channel=channel, actor=scoped.owner)
    assert error == "" and alert.kind == "test" and alert.deliveries[0]["status"] == "sent"
    handler.statuses = [500]
    _alert, error = alert_channel_test(channel=channel, actor=scoped.owner)
    assert error == "HTTP 500"


def test_forecast_alerts_once_when_burn_rate_exhausts_before_period_end(scoped):
    ws = scoped.workspace
    budget = budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="workspace",
        scope_id=ws.pk,
        amount_usd="10",
        period="month",
    )
    _key, start, end = period_bounds(
        "month", "UTC", dt.datetime(2026, 11, 11, tzinfo=dt.UTC).timestamp()
    )
    now = start + (end - start) / 3
    UsageRecord.objects.create(
        workspace=ws,
        request_id="f-1",
        provider="openai",
        model="gpt-4o",
        endpoint="chat.completions",
        cost_usd=Decimal("5"),
        created_at=start + dt.timedelta(days=1),
    )
    created = budget_forecast_check(workspace=ws, now=now)
    assert len(created) == 1 and created[0].budget_id == budget.pk
    assert created[0].kind == "forecast" and "run out" in created[0].title
    assert budget_forecast_check(workspace=ws, now=now + dt.timedelta(hours=1)) == []
    # A slow burn raises nothing.
    Budget.objects.filter(pk=budget.pk).update(amount_usd=Decimal("100"))
    Alert.objects.filter(kind="forecast").delete()
    assert budget_forecast_check(workspace=ws, now=now) == []


def test_delivery_task_retries_with_backoff_until_delivered(scoped, receiver, settings):
    from billing.tasks import alert_deliver_task

    url, handler = receiver
    channel = alert_channel_create(
        workspace=scoped.workspace, actor=scoped.owner, kind="webhook", name="ops", url=url
    )
    alert = _budget_alert(scoped)
    handler.statuses = [503, 502]
    # Eager: Celery re-runs the task in place on retry (the countdown applies on a worker).
    alert_deliver_task.apply(
        kwargs={"workspace_id": scoped.workspace.pk, "alert_id": alert.pk, "channel_id": channel.pk}
    )
    alert.refresh_from_db()
    assert len(handler.requests) == 3
    assert alert.deliveries[0]["status"] == "sent" and alert.deliveries[0]["attempts"] == 3


def _calls(workspace, budget, costs: list[str], *, at: float, prefix: str) -> list[bool]:
    """One admitted+settled call per cost (each reserves exactly what it then spends)."""
    snapshot = {
        "workspace_id": workspace.pk,
        "time_zone": workspace.time_zone,
        "rpm_floor": 1000,
        "budgets": [budget_entry(budget)],
        "settings": {},
    }

    async def run():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        enforcer = Enforcer(client, loader=_zero, clock=lambda: at)
        allowed = []
        for i, cost_usd in enumerate(costs):
            cost = int(Decimal(cost_usd) * USD)
            req = AdmitRequest(
                f"{prefix}-{i}", workspace.pk, 1, None, None, None, "openai", "gpt-4o", 10, 10,
                cost, "", None,
            )  # fmt: skip
            adm = await enforcer.admit(req, snapshot, {"rpm": None})
            allowed.append(adm.allowed)
            if adm.allowed:
                await enforcer.settle(adm, cost_nanos=cost, tokens=20)
        await client.aclose()
        return allowed

    return asyncio.run(run())


def _drain_and_deliver(scoped, receiver) -> list[int]:
    """The Celery tasks: drain the stream into alerts, deliver each to a webhook; the steps
    the webhook received, in order."""
    from billing.tasks import alert_deliver_task, alerts_drain_task

    url, handler = receiver
    channel = alert_channel_create(
        workspace=scoped.workspace, actor=scoped.owner, kind="webhook", name="ops", url=url
    )
    alerts_drain_task.apply()
    assert alerts_drain_task.apply().get() == 0  # nothing left, nothing twice
    for alert in _ladder_alerts(scoped.workspace):
        alert_deliver_task.apply(
            kwargs={
                "workspace_id": scoped.workspace.pk,
                "alert_id": alert.pk,
                "channel_id": channel.pk,
            }
        )
    return [json.loads(body)["step"] for _headers, body in handler.requests]


def _day_budget(scoped):
    ws = scoped.workspace
    return budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="workspace",
        scope_id=ws.pk,
        amount_usd="1.00",
        period="day",
        throttle_rpm=None,
    )


DAY = 1_790_000_000.0 - (1_790_000_000.0 % 86400) + 7200


def test_one_call_crossing_75_and_90_raises_both_steps_once(scoped, redis_client, receiver):
    budget = _day_budget(scoped)
    # 0.60 crosses 50; 0.35 takes 0.60 -> 0.95 (75 and 90 at once); 0.10 is refused at the cap.
    assert _calls(scoped.workspace, budget, ["0.60", "0.35", "0.10"], at=DAY, prefix="x") == [
        True,
        True,
        False,
    ]
    events = redis_client.xrange("alephant:alerts")
    assert [int(f[b"step"]) for _i, f in events] == [50, 75, 90, 100]
    assert [a.step for a in _ladder_alerts(scoped.workspace)] == []
    assert _drain_and_deliver(scoped, receiver) == [50, 75, 90, 100]
    assert [a.step for a in _ladder_alerts(scoped.workspace)] == [50, 75, 90, 100]


def test_jump_from_below_90_to_the_cap_raises_90_and_100_once(scoped, redis_client, receiver):
    budget = _day_budget(scoped)
    # 0.80 -> 1.00 in one call; the next call is refused at the cap (100 already raised).
    allowed = _calls(scoped.workspace, budget, ["0.80", "0.20", "0.01"], at=DAY, prefix="y")
    assert allowed == [True, True, False]
    assert _drain_and_deliver(scoped, receiver) == [50, 75, 90, 100]


def test_refusal_below_90_raises_every_step_up_to_100_once(scoped, redis_client, receiver):
    budget = _day_budget(scoped)
    # 0.85 spent; a 0.20 call would pass the cap: refused, the budget is full for it. The 100 %
    # alert says so, and the ladder below it is never skipped (90 is raised too, once).
    allowed = _calls(scoped.workspace, budget, ["0.85", "0.20", "0.20", "0.15"], at=DAY, prefix="z")
    assert allowed == [True, False, False, True]
    assert _drain_and_deliver(scoped, receiver) == [50, 75, 90, 100]
