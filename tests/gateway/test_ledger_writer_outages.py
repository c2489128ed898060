"""Nothing stops the ledger: the writer process outlives a flushed, restarted or emptied Redis and
lost Postgres connections, and every event the stream held ends up as exactly one ledger row.

Each test runs the real `manage.py ledger_writer` against a PRIVATE `redis-server` (its own port
and directory), so flushing or killing it disturbs no one else; Postgres outages are real:
terminated backends of the writer's own connection (found by its application_name) and a relay
that cuts and refuses connections.
"""

from __future__ import annotations

import threading
import time

import dj_database_url
import pytest
from django.db import connection

from gateway.hotpath.usage import GROUP, STREAM
from tests.gateway import servers
from tests.gateway.outages import (
    OutageProxy,
    PrivateRedis,
    all_stored_once,
    ledger_writers,
    redis_servers,
    send,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def private_redis(tmp_path):
    yield from redis_servers(tmp_path)


@pytest.fixture
def writer_factory(tmp_path):
    yield from ledger_writers(tmp_path)


def test_flush_deleted_stream_and_destroyed_group_are_recreated(
    cast, private_redis, writer_factory
):
    ws = cast.workspace.pk
    server = private_redis()
    client = server.client()
    writer = writer_factory(server.url)
    sent = send(client, ws, "before", 30)
    wait_for(lambda: all_stored_once(ws, sent), 60, "the first events to be stored", writer)

    for i, (what, breakage) in enumerate(
        [
            ("flushall", client.flushall),
            ("flushdb", client.flushdb),
            ("del", lambda: client.delete(STREAM)),
            ("destroy", lambda: client.xgroup_destroy(STREAM, GROUP)),
        ]
    ):
        time.sleep(1.2)  # let the writer sit in its blocking read when the key goes away
        breakage()
        sent += send(client, ws, what, 20)  # a gateway appends before the group exists again
        wait_for(lambda: all_stored_once(ws, sent), 60, f"events after {what}", writer)
        assert writer.alive(), writer.log.read_text()
        assert client.xinfo_groups(STREAM)[0]["name"] == GROUP.encode()
    assert all_stored_once(ws, sent) and len(sent) == 110
    # One warning per breakage, not one per retry.
    assert 1 <= writer.lines("recreating (") <= 4, writer.log.read_text()


def test_redis_killed_and_restarted_loses_no_pending_event(cast, private_redis, writer_factory):
    ws = cast.workspace.pk
    server = private_redis(aof=True)  # appendfsync always: what XADD acknowledged survives
    writer = writer_factory(server.url)
    sent = send(server.client(), ws, "warmup", 10)
    wait_for(lambda: all_stored_once(ws, sent), 60, "the writer to start storing", writer)
    for round_ in range(3):
        # Kill Redis right behind a burst: some entries are unread, some read but unacknowledged.
        sent += send(server.client(), ws, f"burst{round_}", 60)
        server.kill()
        time.sleep(2.0)  # connection refused for a while; the writer backs off
        assert writer.alive(), writer.log.read_text()
        server.start()
        wait_for(lambda: all_stored_once(ws, sent), 90, f"events after restart {round_}", writer)
    assert writer.alive()
    assert server.client().xpending(STREAM, GROUP)["pending"] == 0
    # One warning per outage (redis-py's own retries may hide a short one), not one per retry.
    assert 1 <= writer.lines("redis unavailable (") <= 3, writer.log.read_text()
    assert writer.lines("recovered from redis unavailable") >= 1


def _terminate(app_name: str) -> int:
    # The app role may signal its own role's backends; no superuser needed.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = %s",
            [app_name],
        )
        return cursor.fetchone()[0]


def test_postgres_connection_killed_mid_batch_is_retried(cast, private_redis, writer_factory):
    ws = cast.workspace.pk
    server = private_redis()
    writer = writer_factory(server.url)
    sent = send(server.client(), ws, "warmup", 10)
    wait_for(lambda: all_stored_once(ws, sent), 60, "the writer to start storing", writer)
    stop, killed = threading.Event(), []

    def keep_killing() -> None:
        try:
            while not stop.is_set():
                killed.append(_terminate(writer.app_name))
                stop.wait(0.15)
        finally:
            connection.close()  # this thread's own connection, or the test DB can't be dropped

    killer = threading.Thread(target=keep_killing)
    killer.start()
    try:
        for burst in range(20):  # batches of 25 land while the backend keeps getting killed
            sent += send(server.client(), ws, f"pg{burst}", 40)
            time.sleep(0.2)
    finally:
        stop.set()
        killer.join(timeout=10)
    assert sum(killed) >= 3, "the writer's backend should have been terminated repeatedly"
    wait_for(lambda: all_stored_once(ws, sent), 90, "every event after the kills", writer)
    assert writer.alive(), writer.log.read_text()
    assert len(sent) == 810
    assert writer.lines("recovered from postgres") >= 1, writer.log.read_text()


def test_postgres_refusing_connections_for_a_while(cast, private_redis, writer_factory):
    ws = cast.workspace.pk
    server = private_redis()
    env = servers.test_env()
    db = dj_database_url.parse(env["DATABASE_URL"])
    proxy = OutageProxy((db["HOST"], int(db["PORT"]))).up()
    via_proxy = env["DATABASE_URL"].replace(
        f"@{db['HOST']}:{db['PORT']}/", f"@127.0.0.1:{proxy.port}/"
    )
    writer = writer_factory(server.url, DATABASE_URL=via_proxy, DATABASE_OWNER_URL=via_proxy)
    try:
        sent = send(server.client(), ws, "warmup", 10)
        wait_for(lambda: all_stored_once(ws, sent), 60, "the writer to start storing", writer)
        for outage in range(2):
            proxy.down()  # like a Postgres restart: connections cut, then refused
            sent += send(server.client(), ws, f"down{outage}", 60)
            time.sleep(3)
            assert writer.alive(), writer.log.read_text()
            assert not all_stored_once(ws, sent)  # nothing can have reached Postgres
            proxy.up()
            wait_for(lambda: all_stored_once(ws, sent), 60, f"events after outage {outage}", writer)
    finally:
        proxy.down()
    assert writer.lines("postgres (") <= 2, writer.log.read_text()
    assert writer.lines("recovered from postgres") >= 1


def test_writer_started_before_redis_waits_for_it(cast, tmp_path, writer_factory):
    ws = cast.workspace.pk
    server = PrivateRedis(tmp_path, aof=False)  # not started yet: connection refused
    writer = writer_factory(server.url)
    try:
        time.sleep(2)
        assert writer.alive(), writer.log.read_text()
        server.start()
        sent = send(server.client(), ws, "late", 20)
        wait_for(lambda: all_stored_once(ws, sent), 60, "events once Redis is up", writer)
    finally:
        server.kill()
