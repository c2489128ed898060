"""Outages on demand for ledger tests: a private redis-server to flush or SIGKILL, a TCP relay
in front of Postgres to take down, and the real `manage.py ledger_writer` as a subprocess.

Private instances only: the shared Redis and Postgres other test runs use are never disturbed.
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
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from django.conf import settings

from billing.models import UsageRecord
from tests.billing.test_ledger_writer import event, push
from tests.gateway import servers
from workspaces.tenancy import workspace_scope

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


def redis_servers(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    """Body of a fixture: `make(aof=...)` starts a private Redis; all are killed at the end."""
    started: list[PrivateRedis] = []

    def make(*, aof: bool = False) -> PrivateRedis:
        started.append(PrivateRedis(tmp_path, aof=aof).start())
        return started[-1]

    yield make
    for server in started:
        server.kill()


def ledger_writers(tmp_path: Path) -> Iterator[Callable[..., Writer]]:
    """Body of a fixture: `make(redis_url, **env)` starts a writer; all are stopped at the end."""
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


class LoggedProc(servers.Proc):
    """A `servers.Proc` whose stderr goes to a file, to read what the process logged."""

    def __init__(self, cmd: list[str], env: dict[str, str], name: str, log: Path) -> None:
        super().__init__(cmd, env, name)
        self.log = log

    def start(self) -> LoggedProc:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=servers.ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("w"),
        )
        return self


def start_logged_gateway(env: dict[str, str], log: Path) -> tuple[LoggedProc, str]:
    port = servers.free_port()
    cmd = [sys.executable, "-m", "uvicorn", "alephant.asgi:application", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    cmd += ["--lifespan", "on", "--timeout-graceful-shutdown", "1"]
    proc = LoggedProc(cmd, env, "gateway", log).start()
    base = f"http://127.0.0.1:{port}"
    servers.wait_http(base + "/v1/models", timeout=60, proc=proc)
    return proc, base


def unappended_usage(gateway_log: Path) -> set[str]:
    """Request ids whose usage event the gateway logged it could put neither in Redis nor in
    its spool (`UsageQueue.emit_durable`)."""
    found = set()
    for line in gateway_log.read_text().splitlines():
        if "usage event for " in line and " failed, not recorded" in line:
            found.add(line.split("usage event for ", 1)[1].split()[0])
    return found
