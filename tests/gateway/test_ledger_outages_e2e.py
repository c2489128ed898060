"""End to end: calls answered by a real gateway while its Redis is flushed and SIGKILLed, or while
the gateway itself is SIGKILLed, with the real ledger writer running: every call that got a
complete 200 ends up as exactly one ledger row.

The gateway and the writer share a PRIVATE redis-server, so the flush and the kills disturb no
other test run. A flush deletes what it deletes: calls answered before it may be lost if the
writer had not stored them yet (never duplicated), but every call that started after it must be
stored, including every call answered around a Redis kill: a call whose usage could not reach
Redis (it died mid-call) is spooled to disk before the answer completes and replayed later
(`gateway/hotpath/spool.py`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

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

SLOW = " [[sim:latency=150]]"  # a call spans a Redis kill: admitted before, answered after

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
    suffix: str = ""  # appended to each prompt (simulator directives)
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
                    "messages": [{"role": "user", "content": f"outage {n} {stream}{self.suffix}"}],
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
    env = dict(gw.stack.env, REDIS_URL=server.url, ALEPHANT_USAGE_SPOOL_DIR=str(tmp_path / "sp"))
    proc, base = start_logged_gateway(env, gateway_log)
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
    assert not unappended_usage(gateway_log), "a usage event was neither in Redis nor spooled"
    wait_for(
        lambda: answered_after_flush <= set(rows(ws)), 90, "every call after the flush", writer
    )
    stored = rows(ws)
    assert all(count == 1 for count in stored.values()), "a call was stored twice"
    assert len(answered_after_flush) > 40


@contextmanager
def running(load: Load, threads: int) -> Iterator[None]:
    workers = [threading.Thread(target=load.run, args=(i % 2 == 0,)) for i in range(threads)]
    for t in workers:
        t.start()
    try:
        yield
    finally:
        load.stop.set()
        for t in workers:
            t.join(timeout=30)


def spooled(log: Path) -> int:
    return sum("spooled to disk" in line for line in log.read_text().splitlines())


def test_calls_in_flight_when_redis_is_sigkilled_are_each_stored_once(
    gw, tmp_path, private_redis, writer_factory
):
    """Slow upstream, 8 callers: when Redis dies, calls admitted before are answered after;
    their usage goes to the spool and lands once Redis is back."""
    from tests.gateway.conftest import issue_key

    ws = gw.cast.workspace.pk
    _obj, key = issue_key(gw.cast, name="inflight", rpm=1_000_000)
    server = private_redis(aof=True)
    log = tmp_path / "gateway.log"
    env = dict(gw.stack.env, REDIS_URL=server.url, ALEPHANT_USAGE_SPOOL_DIR=str(tmp_path / "sp"))
    proc, base = start_logged_gateway(env, log)
    writer = writer_factory(server.url)
    load = Load(base + "/v1", key, suffix=SLOW)
    try:
        with running(load, threads=8):
            for _round in range(2):
                before = load.count()
                wait_for(lambda: load.count() > before + 16, 60, "calls before the kill", writer)
                server.kill()
                time.sleep(1.0)  # in-flight calls finish against a dead Redis
                server.start()
            before = load.count()
            wait_for(lambda: load.count() > before + 16, 60, "calls after the restart", writer)
    finally:
        proc.kill()
    answered = {rid for _started, rid in load.answered}
    print(f"answered {len(answered)} calls, {spooled(log)} usage spools")  # shown with -s
    assert spooled(log) > 0, "no call was in flight at a kill: the test proved nothing"
    assert not unappended_usage(log)
    wait_for(lambda: answered <= set(rows(ws)), 90, "every answered call", writer)
    assert all(count == 1 for count in rows(ws).values()), "a call was stored twice"


def test_a_sigkilled_gateways_spool_is_replayed_by_the_next_gateway(
    gw, tmp_path, private_redis, writer_factory
):
    """Redis dies under in-flight calls, the gateway spools their usage and is SIGKILLed before
    it could replay; a new gateway on the same spool dir takes the dead one's file over."""
    from tests.gateway.conftest import issue_key

    ws = gw.cast.workspace.pk
    _obj, key = issue_key(gw.cast, name="heir", rpm=1_000_000)
    server = private_redis(aof=True)
    spool_dir = tmp_path / "sp"
    env = dict(gw.stack.env, REDIS_URL=server.url, ALEPHANT_USAGE_SPOOL_DIR=str(spool_dir))
    first, base = start_logged_gateway(env, tmp_path / "first.log")
    load = Load(base + "/v1", key, suffix=SLOW)
    try:
        with running(load, threads=8):
            time.sleep(1.0)
            server.kill()
            time.sleep(1.0)
    finally:
        first.kill(signal.SIGKILL)
    answered = {rid for _started, rid in load.answered}
    assert spooled(tmp_path / "first.log") > 0 and list(spool_dir.rglob("*.jsonl"))
    server.start()
    writer = writer_factory(server.url)
    second, _base = start_logged_gateway(env, tmp_path / "second.log")
    try:
        wait_for(lambda: answered <= set(rows(ws)), 60, "the dead gateway's calls", writer)
        assert all(count == 1 for count in rows(ws).values()), "a call was stored twice"
        wait_for(lambda: not list(spool_dir.rglob("*.jsonl")), 10, "the spool emptied", writer)
    finally:
        second.kill()
