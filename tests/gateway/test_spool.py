"""The usage spool (`gateway/hotpath/spool.py`): append + fsync, takeover of a dead process's
files (and never of a live one's), torn last lines, replay into the real test Redis, and a
replay loop that outlives a Redis that is down."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest
import redis.asyncio as aioredis
from django.conf import settings

from gateway.hotpath.spool import Spool, read_events, replay_forever, replay_once
from gateway.hotpath.usage import UsageQueue
from tests.gateway import servers
from tests.gateway.outages import redis_servers

STREAM = "alephant:test:spool"


def events(*ids: str) -> list[bytes]:
    return [orjson.dumps({"request_id": rid, "cost_usd": "0.000001"}) for rid in ids]


def ids(raw: list[bytes]) -> list[str]:
    return [orjson.loads(e)["request_id"] for e in raw]


def spool(tmp_path, url: str | None = None) -> Spool:
    return Spool(tmp_path, redis_url=url or settings.REDIS_URL, stream=STREAM)


def files(s: Spool) -> list:
    return sorted(s.dir.glob("*.jsonl")) if s.dir.exists() else []


def test_append_is_on_disk_and_claim_rotates_the_current_file(tmp_path):
    s = spool(tmp_path)
    assert files(s) == []  # nothing is created until something is spooled
    s.append(events("a", "b"))
    s.append(events("c"))
    [path] = files(s)
    assert ids(read_events(path)) == ["a", "b", "c"]
    [claimed] = s.claim()
    s.append(events("d"))  # after the claim: a new file, not the one being replayed
    assert len(files(s)) == 2
    assert ids(read_events(claimed.path)) == ["a", "b", "c"]
    s.discard(claimed)
    [rest] = files(s)
    assert ids(read_events(rest)) == ["d"]
    s.close()


def test_torn_last_line_is_ignored_and_never_spoils_the_next_append(tmp_path, caplog):
    s = spool(tmp_path)
    s.append(events("a"))
    [path] = files(s)
    with open(path, "ab") as f:  # a write cut short: its call was never answered
        f.write(b'{"request_id": "torn", "cost')
    assert ids(read_events(path)) == ["a"]
    s.append(events("b"))  # starts with a newline: "b" stays whole, the torn line is skipped
    with caplog.at_level(logging.ERROR, logger="alephant.gateway"):
        assert ids(read_events(path)) == ["a", "b"]
    assert "unreadable line" in caplog.text
    s.close()


def test_a_live_owners_file_is_never_taken_a_dead_ones_is_taken_once(tmp_path):
    owner, a, b = spool(tmp_path), spool(tmp_path), spool(tmp_path)
    owner.append(events("x", "y"))
    assert a.claim() == [] and b.claim() == []  # the owner holds its lock
    owner.close()  # what dying does to a flock
    first, second = a.claim(), b.claim()
    assert [ids(read_events(c.path)) for c in first] == [["x", "y"]]
    assert second == []  # a holds it (locked, renamed to a's own name)
    a.discard(first[0])
    assert files(a) == [] and b.claim() == []


def test_two_replayers_racing_for_orphans_take_each_file_exactly_once(tmp_path):
    dead = [spool(tmp_path) for _ in range(20)]
    for n, s in enumerate(dead):
        s.append(events(f"r{n}"))
        s.close()
    replayers = [spool(tmp_path) for _ in range(4)]

    async def race() -> list:
        return await asyncio.gather(*(asyncio.to_thread(r.claim) for r in replayers))

    taken = [c for claims in asyncio.run(race()) for c in claims]
    got = sorted(rid for c in taken for rid in ids(read_events(c.path)))
    assert got == sorted(f"r{n}" for n in range(20))


def test_a_sigkilled_process_leaves_its_file_to_the_next_one(tmp_path):
    script = (
        "import sys, time, orjson\n"
        "from gateway.hotpath.spool import Spool\n"
        f"s = Spool({str(tmp_path)!r}, redis_url={settings.REDIS_URL!r}, stream={STREAM!r})\n"
        "s.append([orjson.dumps({'request_id': 'from-the-dead'})])\n"
        "print('spooled', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=servers.ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "spooled"
        heir = spool(tmp_path)
        assert heir.claim() == []  # alive: its lock holds
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        [claimed] = heir.claim()
        assert ids(read_events(claimed.path)) == ["from-the-dead"]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_replay_pushes_every_spooled_event_to_the_stream_and_deletes_the_files(
    tmp_path, redis_client
):
    s, dead = spool(tmp_path), spool(tmp_path)
    s.append(events("a", "b"))
    dead.append(events("c"))
    dead.close()

    async def replay() -> int:
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        try:
            return await replay_once(s, client, [])
        finally:
            await client.aclose()

    assert asyncio.run(replay()) == 3
    stored = [orjson.loads(f[b"e"])["request_id"] for _id, f in redis_client.xrange(STREAM)]
    assert sorted(stored) == ["a", "b", "c"]
    assert files(s) == []


@pytest.fixture
def private_redis(tmp_path):
    yield from redis_servers(tmp_path)


def test_replay_loop_waits_out_a_dead_redis_and_then_delivers(tmp_path, private_redis, caplog):
    server = private_redis(aof=False)
    server.kill()
    s = spool(tmp_path / "spool", server.url)
    s.append(events("late-1", "late-2"))

    async def scenario() -> list[str]:
        client = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.5)
        task = asyncio.create_task(replay_forever(s, client, interval=0.05))
        try:
            await asyncio.sleep(0.6)
            assert not task.done()  # failing, backing off, alive
            await asyncio.to_thread(server.start)
            deadline = time.monotonic() + 15
            while not (entries := await client.xrange(STREAM)):
                assert time.monotonic() < deadline and not task.done()
                await asyncio.sleep(0.05)
            return [orjson.loads(f[b"e"])["request_id"] for _id, f in entries if f is not None]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.aclose()

    with caplog.at_level(logging.WARNING, logger="alephant.gateway"):
        assert asyncio.run(scenario()) == ["late-1", "late-2"]
    assert "spool replay failed" in caplog.text
    assert files(s) == []


def test_emit_durable_spools_when_redis_is_down_and_logs_events_when_disk_fails_too(
    tmp_path, caplog
):
    dead_url = f"redis://127.0.0.1:{servers.free_port()}/0"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # a spool dir that cannot be created: the disk failing

    async def emit(spool_dir) -> bool:
        client = aioredis.Redis.from_url(dead_url, socket_connect_timeout=0.5)
        local = spool(spool_dir, dead_url)
        queue = UsageQueue(client, STREAM, spool=local)
        try:
            return await queue.emit_durable(events("req_1"), request_id="req_1")
        finally:
            local.close()
            await client.aclose()

    with caplog.at_level(logging.WARNING, logger="alephant.gateway"):
        assert asyncio.run(emit(tmp_path / "ok")) is True
        assert asyncio.run(emit(blocker)) is False
    [path] = files(spool(tmp_path / "ok", dead_url))
    assert ids(read_events(path)) == ["req_1"]
    assert "usage event for req_1 spooled to disk" in caplog.text
    assert "usage event for req_1 failed, not recorded" in caplog.text
    assert '"request_id":"req_1"' in caplog.text  # recoverable from the log
    assert os.path.isfile(blocker)
