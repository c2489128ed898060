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


def test_sigkill_of_gateway_and_writer_during_load_loses_no_record(gw):
    from billing.models import UsageRecord
    from tests.gateway.conftest import issue_key
    from workspaces.tenancy import workspace_scope

    _obj, key = issue_key(gw.cast, name="load", rpm=1_000_000)  # the load, not the rate cap
    env = dict(gw.stack.env)
    victim, base = start_gateway(env)
    writer = start_ledger_writer(env, "--claim-idle-ms", "500", "--consumer", "writer-a")
    stop, lock, done = threading.Event(), threading.Lock(), []
    threads = [
        threading.Thread(target=_load, args=(base + "/v1", key, stop, done, lock, i % 2 == 0))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    try:
        time.sleep(1.5)
        writer.kill(signal.SIGKILL)  # the writer dies mid-stream of batches
        time.sleep(1.0)
        victim.kill(signal.SIGKILL)  # and the gateway dies under load
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        victim.kill(signal.SIGKILL)
    assert len(done) > 20, "the load generator should have completed calls before the kill"
    # A fresh writer (another consumer) reclaims what writer-a left pending and drains the rest.
    replacement = start_ledger_writer(env, "--claim-idle-ms", "500", "--consumer", "writer-b")
    try:
        deadline = time.time() + 30
        missing = set(done)
        while time.time() < deadline and missing:
            time.sleep(0.5)
            with workspace_scope(gw.cast.workspace.pk):
                stored = set(
                    UsageRecord.objects.filter(request_id__in=list(missing)).values_list(
                        "request_id", flat=True
                    )
                )
            missing -= stored
    finally:
        replacement.kill()
    assert not missing, f"{len(missing)} of {len(done)} answered calls have no usage record"
    with workspace_scope(gw.cast.workspace.pk):
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
