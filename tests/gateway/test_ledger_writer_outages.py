"""Nothing stops the ledger: the writer process outlives a flushed, restarted or emptied Redis and
lost Postgres connections, and every event the stream held ends up as exactly one ledger row.

Each test runs the real `manage.py ledger_writer` against a PRIVATE `redis-server` (its own port
and directory), so flushing or killing it disturbs no one else; Postgres outages are real
terminated backends of the writer's own connection (found by its application_name).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dj_database_url
import pytest
import redis
from django.conf import settings
from django.db import connection

from billing.models import UsageRecord
from gateway.hotpath.usage import GROUP, STREAM
from tests.billing.test_ledger_writer import event, push
from tests.gateway import servers
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class OutageProxy:
    """A TCP relay in front of Postgres that can go down: `down()` drops every connection and
    refuses new ones (what a client sees while Postgres restarts), `up()` serves again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, servers.free_port()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()

    def up(self) -> OutageProxy:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _addr = listener.accept()
            except OSError:
                return  # closed by down()
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class PrivateRedis:
    """A throwaway redis-server; `kill()` is SIGKILL, `start()` brings it back on the same port."""

    def __init__(self, tmp: Path, *, aof: bool) -> None:
        self.dir, self.aof, self.port = tmp, aof, servers.free_port()
        self.proc: subprocess.Popen | None = None
        # The same logical db number as the test settings, which a child process (started with
        # the test settings) would otherwise substitute into any REDIS_URL we give it.
        self.url = f"redis://127.0.0.1:{self.port}/{settings.REDIS_URL.rsplit('/', 1)[-1]}"

    def start(self) -> PrivateRedis:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else []
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + (persistence or ["--appendonly", "no"])
            + ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            start_new_session=True,
        )
        client = self.client()
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.RedisError:  # not up yet, or still loading the AOF
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


class Writer:
    """`manage.py ledger_writer` as a subprocess, its log kept to count recovery lines."""

    def __init__(self, redis_url: str, log: Path, consumer: str = "w1", **env_: str) -> None:
        env = dict(servers.test_env(), REDIS_URL=redis_url, **env_)
        self.log = log
        self.app_name = f"alephant-ledger-{consumer}"
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "manage.py", "ledger_writer", "--consumer", consumer),
                *("--claim-idle-ms", "1000", "--batch-size", "25"),
            ],
            cwd=servers.ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def lines(self, needle: str) -> int:
        return sum(needle in line for line in self.log.read_text().splitlines())

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@pytest.fixture
def private_redis(tmp_path):
    servers: list[PrivateRedis] = []

    def make(*, aof: bool = False) -> PrivateRedis:
        servers.append(PrivateRedis(tmp_path, aof=aof).start())
        return servers[-1]

    yield make
    for server in servers:
        server.kill()


@pytest.fixture
def writer_factory(tmp_path):
    writers: list[Writer] = []

    def make(redis_url: str, **env: str) -> Writer:
        writers.append(Writer(redis_url, tmp_path / f"writer{len(writers)}.log", **env))
        return writers[-1]

    yield make
    for writer in writers:
        writer.stop()
        print(f"--- {writer.log.name}\n{writer.log.read_text()}")  # shown when a test fails


def wait_for(condition, timeout: float, what: str, writer: Writer) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert writer.alive(), f"the writer exited while waiting for {what}"
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def rows(workspace_id: int) -> dict[str, int]:
    """request_id -> number of ledger rows (must be 1 for each event)."""
    with workspace_scope(workspace_id):
        ids = list(UsageRecord.objects.values_list("request_id", flat=True))
    return {rid: ids.count(rid) for rid in set(ids)}


def send(client: redis.Redis, workspace_id: int, prefix: str, n: int) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(n)]
    push(client, *(event(workspace_id, rid) for rid in ids))
    return ids


def all_stored_once(workspace_id: int, sent: list[str]) -> bool:
    stored = rows(workspace_id)
    assert all(count == 1 for count in stored.values()), "a ledger row was written twice"
    return set(sent) <= set(stored)


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
