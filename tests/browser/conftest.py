"""Real-browser tests: Debian chromium (headless) driven by Playwright against a real uvicorn.

The app runs in its own process (`alephant.asgi`, the same dispatcher as production: Django for
pages, the raw ASGI gateway for /v1), on a free port, against this session's test database and
Redis db, beside the upstream simulator. Test data is committed (`transactional_db`) so the
server sees it; the flush after each test runs as the owner.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import dj_database_url
import httpx
import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
# between page steps are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/lib/chromium/chromium"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not start:\n{log.read_text()[-3000:]}")


def _db_url(url: str, name: str) -> str:
    parsed = dj_database_url.parse(url)
    return (
        f"postgres://{parsed['USER']}:{parsed['PASSWORD']}@{parsed['HOST']}:{parsed['PORT']}/{name}"
    )


class LiveApp:
    def __init__(self, url: str, simulator: str, log: Path) -> None:
        self.url = url
        self.simulator = simulator
        self.log = log

    def invitation_link(self, email: str) -> str:
        """The link of the newest invitation email to `email` (console email backend)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            links = re.findall(r"(http://[^\s\"'<>]+/invite/[A-Za-z0-9_\-]+/)", text)
            if links and email in text:
                return links[-1]
            time.sleep(0.2)
        raise AssertionError(f"no invitation email for {email}")


@pytest.fixture(scope="module")
def live_app(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.conf import settings
    from django.db import connection

    name = connection.settings_dict["NAME"]  # the test database pytest-django created
    workdir = tmp_path_factory.mktemp("live")
    sim_port, app_port = free_port(), free_port()
    sim_log, app_log = workdir / "simulator.log", workdir / "app.log"
    url = f"http://127.0.0.1:{app_port}"
    env = {
        **os.environ,
        "DATABASE_URL": _db_url(settings.DATABASE_APP_URL, name),
        "DATABASE_OWNER_URL": _db_url(settings.DATABASE_OWNER_URL, name),
        "REDIS_URL": settings.REDIS_URL,
        # The same test settings as this process: users hashed here with the fast hasher log in there.
        "DJANGO_SETTINGS_MODULE": "alephant.settings.test",
        "DJANGO_DEBUG": "1",
        "ALEPHANT_SITE_URL": url,
        "ALEPHANT_ALLOW_PRIVATE_UPSTREAMS": "1",
        "EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend",
        "ALEPHANT_LOGIN_RATE_LIMIT": "1000/m/ip",
        "PYTHONUNBUFFERED": "1",
    }
    # The test database is new each session and reuses ids: stale counters and snapshots
    # in this session's Redis db would be read as the new rows'.
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    procs = []
    try:
        with sim_log.open("w") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "devtools.simulator", "--port", str(sim_port)],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait(f"http://127.0.0.1:{sim_port}/_sim/stats", procs[-1], sim_log)
        with app_log.open("w") as out:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "alephant.asgi:application",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(app_port),
                        "--lifespan",
                        "on",
                        "--no-access-log",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait(f"{url}/healthz", procs[-1], app_log)
        yield LiveApp(url, f"http://127.0.0.1:{sim_port}", app_log)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def log_in(page, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*accounts/login).*$"))
