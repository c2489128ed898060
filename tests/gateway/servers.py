"""Real processes for end-to-end gateway tests: the simulator, uvicorn, the ledger writer.

The session's shared stack (`simulator`, `gateway_stack`, `gateway_pair` in tests/conftest.py) is
built from these; tests that kill or reconfigure a process start their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
# Seconds a gateway process trusts a key/workspace snapshot in memory (1 s in production): short,
# so a test sees a revoked key or a new budget after a brief wait instead of a 1 s sleep.
SNAPSHOT_CACHE_TTL = 0.05


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_env() -> dict[str, str]:
    """Environment for child processes: the test database (app role) and the test Redis db."""
    import dj_database_url
    from django.conf import settings
    from django.db import connection

    env = dict(os.environ)
    # The same test settings as this process: fast hasher, this run's Redis db.
    env["DJANGO_SETTINGS_MODULE"] = "alephant.settings.test"
    url = dj_database_url.parse(settings.DATABASE_APP_URL)
    env["DATABASE_URL"] = (
        f"postgres://{url['USER']}:{url['PASSWORD']}@{url['HOST']}:{url['PORT']}/"
        f"{connection.settings_dict['NAME']}"
    )
    env["DATABASE_OWNER_URL"] = env["DATABASE_URL"]
    env["REDIS_URL"] = settings.REDIS_URL
    env["ALEPHANT_KEY_HASH_SECRET"] = settings.ALEPHANT_KEY_HASH_SECRET
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["ALEPHANT_SNAPSHOT_CACHE_TTL"] = str(SNAPSHOT_CACHE_TTL)
    return env


def snapshots_expire() -> None:
    """Let every gateway process drop the snapshots it holds in memory (they re-read Redis)."""
    time.sleep(SNAPSHOT_CACHE_TTL * 2)


def wait_until(condition, timeout: float = 10.0, interval: float = 0.02):
    """Poll `condition()` until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Proc:
    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, name: str = "") -> None:
        self.cmd = cmd
        self.env = env
        self.name = name
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=None,
        )
        return self

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def wait_http(url: str, timeout: float = 30.0, proc: Proc | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc and proc.proc and proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not come up")


def start_simulator(port: int | None = None) -> tuple[Proc, str]:
    port = port or free_port()
    proc = Proc([sys.executable, "-m", "devtools.simulator", "--port", str(port)], name="simulator")
    proc.start()
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/_sim/stats", proc=proc)
    return proc, base


def start_gateway(
    env: dict[str, str], port: int | None = None, app: str = "alephant.asgi:application"
) -> tuple[Proc, str]:
    proc, base = spawn_gateway(env, port, app)
    wait_http(base + "/v1/models", timeout=60, proc=proc)
    return proc, base


def spawn_gateway(
    env: dict[str, str], port: int | None = None, app: str = "alephant.asgi:application"
) -> tuple[Proc, str]:
    """Start a gateway without waiting for it (start several, then `wait_http` each)."""
    port = port or free_port()
    proc = Proc(
        [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "on",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "1",
        ],
        env,
        "gateway",
    )
    proc.start()
    return proc, f"http://127.0.0.1:{port}"


def start_ledger_writer(env: dict[str, str], *extra: str) -> Proc:
    return Proc(
        [sys.executable, "manage.py", "ledger_writer", *extra], env, "ledger_writer"
    ).start()


@dataclass
class Stack:
    """The simulator and the gateway processes serving the test database and Redis db."""

    sim_url: str
    gw_urls: list[str]
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list, repr=False)

    @property
    def gw_url(self) -> str:
        return self.gw_urls[0]

    def sim_stats(self) -> dict:
        return httpx.get(self.sim_url + "/_sim/stats").json()

    def sim_reset(self) -> None:
        httpx.post(self.sim_url + "/_sim/reset")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()


def stack_start(env: dict[str, str], sim_url: str, gateways: int = 1) -> Stack:
    """Start `gateways` processes at once (their Django start-up overlaps), then wait for each."""
    spawned = [spawn_gateway(env) for _ in range(gateways)]
    stack = Stack(sim_url, [base for _proc, base in spawned], env, [p for p, _b in spawned])
    try:
        for proc, base in spawned:
            wait_http(base + "/v1/models", timeout=60, proc=proc)
    except BaseException:
        stack.stop()
        raise
    return stack
