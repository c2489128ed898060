"""No usage record is lost: client disconnects, a gateway killed with SIGKILL, a writer crash."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.gateway.servers import start_gateway, start_ledger_writer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_disconnect_mid_stream_bills_partial_output(gw):
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "long [[sim:tokens=400,latency=2000]]"}],
    }
    with httpx.Client(timeout=30) as client:
        with client.stream(
            "POST",
            gw.base + "/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {gw.key}"},
        ) as resp:
            request_id = resp.headers["alephant-request-id"]
            seen = 0
            for line in resp.iter_lines():
                if line.startswith("data: ") and '"content"' in line:
                    seen += 1
                if seen >= 5:
                    break  # leaving the block closes the connection mid-stream
    deadline = time.time() + 10
    records = []
    while time.time() < deadline and not records:
        time.sleep(0.3)
        records = gw.ledger(request_id=request_id)
    [record] = records
    assert record.status_code == 499 and record.error_type == "client_disconnected"
    assert record.estimated and record.stream
    assert 0 < record.output_tokens < 400
    assert record.cost_usd > 0


def _load(
    base: str, key: str, stop: threading.Event, done: list[str], lock: threading.Lock, stream: bool
) -> None:
    with httpx.Client(timeout=10) as client:
        n = 0
        while not stop.is_set():
            n += 1
            body = {
                "model": "gpt-4o-mini",
                "stream": stream,
                "messages": [{"role": "user", "content": f"load {n} {stream}"}],
            }
            try:
                if stream:
                    with client.stream(
                        "POST",
                        base + "/chat/completions",
                        json=body,
                        headers={"authorization": f"Bearer {key}"},
                    ) as resp:
                        text = resp.read().decode()
                        if resp.status_code == 200 and ": alephant-cost-usd=" in text:
                            with lock:
                                done.append(resp.headers["alephant-request-id"])
                else:
                    resp = client.post(
                        base + "/chat/completions",
                        json=body,
                        headers={"authorization": f"Bearer {key}"},
                    )
                    if resp.status_code == 200 and resp.json()["choices"]:
                        with lock:
                            done.append(resp.headers["alephant-request-id"])
            except (httpx.HTTPError, ValueError):
                if stop.is_set():
                    return
                time.sleep(0.05)


def _wait_for(condition, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `condition` until it holds; bounded (a slow machine gets time, a hang still fails)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _stored(workspace_id: int, request_ids: list[str]) -> set[str]:
    from billing.models import UsageRecord
    from workspaces.tenancy import workspace_scope

    with workspace_scope(workspace_id):
        return set(
            UsageRecord.objects.filter(request_id__in=request_ids).values_list(
                "request_id", flat=True
            )
        )


def test_sigkill_of_gateway_and_writer_during_load_loses_no_record(gw):
    from billing.models import UsageRecord
    from billing.services.budgets import guardrails_update
    from tests.gateway.conftest import issue_key
    from workspaces.tenancy import workspace_scope

    ws = gw.cast.workspace.pk
    # The load, not the rate cap: a key's rpm only narrows the workspace floor (100/min by
    # default), which the load would otherwise hit and then wait out a whole minute.
    with workspace_scope(ws):
        guardrails_update(workspace=gw.cast.workspace, actor=None, rpm_floor=1_000_000)
    _obj, key = issue_key(gw.cast, name="load", rpm=1_000_000)
    env = dict(gw.stack.env)
    victim, base = start_gateway(env)
    writer = start_ledger_writer(env, "--claim-idle-ms", "500", "--consumer", "writer-a")
    stop, lock, done = threading.Event(), threading.Lock(), []
    threads = [
        threading.Thread(target=_load, args=(base + "/v1", key, stop, done, lock, i % 2 == 0))
        for i in range(8)
    ]

    def answered() -> list[str]:
        with lock:
            return list(done)

    for t in threads:
        t.start()
    try:
        # Conditions, not fixed sleeps: on a loaded machine the writer and the load take longer
        # to get going, and the kills must still land mid-flight. The writer dies only once it
        # is demonstrably writing batches (some answered calls stored) while the load runs on.
        _wait_for(lambda: len(answered()) > 20, 60, "the load to complete 20 calls")
        _wait_for(lambda: _stored(ws, answered()), 90, "the writer to store records")
        writer.kill(signal.SIGKILL)  # the writer dies mid-stream of batches
        before = len(answered())
        _wait_for(lambda: len(answered()) >= before + 20, 60, "20 more calls after the writer")
        victim.kill(signal.SIGKILL)  # and the gateway dies under load
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        victim.kill(signal.SIGKILL)
        writer.kill(signal.SIGKILL)
    assert not any(t.is_alive() for t in threads)
    done = answered()
    assert len(done) > 40, "the load generator should have completed calls before the kills"
    # A fresh writer (another consumer) reclaims what writer-a left pending and drains the rest.
    replacement = start_ledger_writer(env, "--claim-idle-ms", "500", "--consumer", "writer-b")
    missing = set(done)
    try:
        deadline = time.monotonic() + 120
        while missing and time.monotonic() < deadline:
            missing -= _stored(ws, list(missing))
            if missing:
                time.sleep(0.5)
    finally:
        replacement.kill()
    assert not missing, f"{len(missing)} of {len(done)} answered calls have no usage record"
    with workspace_scope(ws):
        assert UsageRecord.objects.filter(request_id__in=done).count() == len(set(done))


def test_truncated_upstream_stream_is_billed_as_estimate(gw):
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "cut [[sim:fail=truncate,tokens=40]]"}],
    }
    with httpx.stream(
        "POST",
        gw.base + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {gw.key}"},
    ) as resp:
        text = resp.read().decode()
        request_id = resp.headers["alephant-request-id"]
    assert "[DONE]" not in text and text.rstrip().splitlines()[-1].startswith(
        ": alephant-cost-usd="
    )
    [record] = gw.ledger(request_id=request_id)
    assert record.status_code == 502 and record.error_type == "upstream_truncated"
    assert record.estimated and 0 < record.output_tokens < 40 and record.cost_usd > 0


def test_redis_down_is_a_503_never_a_500(gw):
    from tests.gateway.servers import free_port

    env = dict(gw.stack.env, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    proc, base = start_gateway(env)
    try:
        resp = httpx.post(
            base + "/v1/chat/completions",
            headers={"authorization": f"Bearer {gw.key}"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
        )
    finally:
        proc.kill()
    assert resp.status_code == 503 and resp.headers["retry-after"]
    assert resp.json()["error"]["type"] == "service_unavailable"
    assert gw.stack.sim_stats()["total"] == 0
