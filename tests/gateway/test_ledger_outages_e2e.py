"""End to end: calls answered by a real gateway while its Redis is flushed and SIGKILLed, with the
real ledger writer running, each end up as exactly one ledger row.

The gateway and the writer share a PRIVATE redis-server (append-only, fsync always), so the
flush and the kill disturb no other test run. A flush deletes what it deletes: calls answered
before it may be lost if the writer had not stored them yet (never duplicated), but every call
that started after it must be stored, as must every call answered around the Redis kill --
except those whose usage event the gateway itself failed to append (it logs them): that is the
gateway's side of the contract, not the writer's, and is counted separately below.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.gateway.outages import (
    ledger_writers,
    redis_servers,
    rows,
    start_logged_gateway,
    unappended_usage,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def private_redis(tmp_path):
    yield from redis_servers(tmp_path)


@pytest.fixture
def writer_factory(tmp_path):
    yield from ledger_writers(tmp_path)


@dataclass
class Load:
    base: str
    key: str
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    answered: list[tuple[float, str]] = field(default_factory=list)  # (started, request id)

    def count(self) -> int:
        with self.lock:
            return len(self.answered)

    def since(self, moment: float) -> list[str]:
        with self.lock:
            return [rid for started, rid in self.answered if started > moment]

    def run(self, stream: bool) -> None:
        headers = {"authorization": f"Bearer {self.key}"}
        with httpx.Client(timeout=10) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                body = {
                    "model": "gpt-4o-mini",
                    "stream": stream,
                    "messages": [{"role": "user", "content": f"outage {n} {stream}"}],
                }
                started = time.monotonic()
                try:
                    with client.stream(
                        "POST", self.base + "/chat/completions", json=body, headers=headers
                    ) as resp:
                        text = resp.read().decode()
                except httpx.HTTPError:
                    time.sleep(0.05)  # Redis down: refused or cut; not an answered call
                    continue
                complete = ": alephant-cost-usd=" in text if stream else '"choices"' in text
                if resp.status_code == 200 and complete:
                    with self.lock:
                        self.answered.append((started, resp.headers["alephant-request-id"]))
                else:
                    time.sleep(0.05)  # 503 while Redis is away


def test_answered_calls_survive_redis_flush_and_kill(gw, tmp_path, private_redis, writer_factory):
    from tests.gateway.conftest import issue_key

    ws = gw.cast.workspace.pk
    _obj, key = issue_key(gw.cast, name="outages", rpm=1_000_000)
    server = private_redis(aof=True)
    gateway_log = tmp_path / "gateway.log"
    proc, base = start_logged_gateway(dict(gw.stack.env, REDIS_URL=server.url), gateway_log)
    writer = writer_factory(server.url)
    load = Load(base + "/v1", key)
    threads = [threading.Thread(target=load.run, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: load.count() > 20, 60, "20 answered calls", writer)
        server.client().flushall()
        flushed = time.monotonic()
        before = load.count()
        wait_for(lambda: load.count() > before + 20, 60, "20 calls after the flush", writer)
        server.kill()
        time.sleep(1.5)  # the gateway answers 503, the writer backs off
        server.start()
        before = load.count()
        wait_for(lambda: load.count() > before + 20, 60, "20 calls after the restart", writer)
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=30)
        proc.kill()
    assert writer.alive(), writer.log.read_text()
    answered_after_flush = set(load.since(flushed))
    # Known gap (gateway, not writer): a call whose usage event could not be appended because
    # Redis died mid-call is still answered 200; the gateway logs it. Reported, not hidden.
    unrecorded = answered_after_flush & unappended_usage(gateway_log)
    must_have = answered_after_flush - unrecorded
    wait_for(lambda: must_have <= set(rows(ws)), 90, "every call after the flush", writer)
    stored = rows(ws)
    assert all(count == 1 for count in stored.values()), "a call was stored twice"
    assert len(must_have) > 40 and len(unrecorded) <= 10, (len(must_have), unrecorded)
