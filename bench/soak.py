"""`make soak` (`python -m bench.soak`): the production process model under a steady load for a
long while, checked for memory growth, latency drift and lost or duplicated ledger rows.

    SOAK_MINUTES=10 SOAK_RATE=200 python -m bench.soak   # the defaults; SOAK_MINUTES=1: short

Processes, as `deploy/` runs them: 4 gateways (`uvicorn gateway.asgi:application`, one port
each) behind the nginx example (`deploy/nginx/alephant.conf`, its upstream block widened to the
4 ports), 2 ledger writers (`manage.py ledger_writer`), a Celery worker and beat (the rollups run
every minute). The upstream is the fast nginx mock of `make bench` (`bench/mockstack.py`: canned
JSON and SSE), and Redis is its private `redis-server`; Postgres is the dev cluster with a
database of its own (`ALEPHANT_BENCH_SOAK_DB`, default `alephant_bench_soak`, migrated as the
owner; the ledger table is emptied at the start of each run).

Load: an open-loop client in this process sends `SOAK_RATE` calls a second at a fixed pace
(not a closed loop: a slow gateway does not slow the offered load), 3 in 4 JSON, 1 in 4
streamed, over many keys (each key stays under the default 100 rpm cap). It keeps the request
id of every answered call. Reported: RSS per process at start, after the warm-up minute and at
the end (growth measured from the warm-up); p50/p99 per minute; and, once the writers drained
the stream, lost rows (answered calls with no ledger row) and duplicated rows (request ids in
the ledger more than once); both should be 0.
"""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp
import orjson
import redis

from bench.mockstack import MockStack, ensure_tool
from bench.wrk import rss_mb
from tests.gateway.servers import Proc, free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
SOAK_DB = os.environ.get("ALEPHANT_BENCH_SOAK_DB", "alephant_bench_soak")
GATEWAYS, WRITERS = 4, 2
KEY_RPM = 50  # calls a minute per key: half the default cap of 100


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def soak_env(redis_url: str, spool: Path) -> dict[str, str]:
    from alephant.env import load_dotenv

    load_dotenv()
    app = os.environ["DATABASE_URL"]
    owner = os.environ.get("DATABASE_OWNER_URL", app)
    return {
        **os.environ,
        "DATABASE_URL": _with_db(app, SOAK_DB),
        "DATABASE_OWNER_URL": _with_db(owner, SOAK_DB),
        "DJANGO_SETTINGS_MODULE": "alephant.settings.dev",
        "DJANGO_DEBUG": "0",  # DEBUG keeps every query in memory: not a leak to measure
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "ALEPHANT_CACHE_URL": redis_url,
        "ALEPHANT_ALLOW_PRIVATE_UPSTREAMS": "1",  # the mock is on loopback
        "ALEPHANT_USAGE_SPOOL_DIR": str(spool),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def ensure_database(env: dict[str, str]) -> None:
    import psycopg

    with psycopg.connect(_with_db(env["DATABASE_OWNER_URL"], "postgres"), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [SOAK_DB]).fetchone():
            c.execute(f'CREATE DATABASE "{SOAK_DB}"')
    migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"]
    subprocess.run(migrate, cwd=ROOT, env={**env, "ALEPHANT_DB_AS_OWNER": "1"}, check=True)
    with psycopg.connect(env["DATABASE_OWNER_URL"], autocommit=True) as c:
        c.execute("TRUNCATE billing_usagerecord")


def tenants(upstream: str, keys: int) -> tuple[list[int], list[tuple[str, bool]]]:
    """Two workspaces (one whose OpenAI key points at the mock's JSON path, one at its SSE
    path), each with a $1M monthly budget (the settle script runs on every call) and keys for
    one member. Returns the workspace ids and (raw key, streamed) pairs."""
    import django

    django.setup()
    from django.db import transaction

    from billing.services.budgets import budget_create
    from gateway.services.keys import gateway_key_create, provider_key_create
    from workspaces.models import Role, User
    from workspaces.services.workspaces import member_add, workspace_create
    from workspaces.tenancy import workspace_scope

    stamp = f"{int(time.time())}-{os.getpid()}"
    ws_ids, out = [], []
    for streamed, path, share in ((False, "json", 3), (True, "sse", 1)):
        owner = User.objects.create_user(f"owner-{path}-{stamp}@soak.bench.alephant.dev")
        ws = workspace_create(name=f"Soak {path} {stamp}", owner=owner)
        with workspace_scope(ws.pk), transaction.atomic():
            user = User.objects.create_user(f"dev-{path}-{stamp}@soak.bench.alephant.dev")
            member = member_add(workspace=ws, user=user, role=Role.MEMBER)
            provider_key_create(
                workspace=ws, provider="openai", name="mock", secret="sk-soak-mock",
                base_url=f"{upstream}/{path}/v1",
            )  # fmt: skip
            budget_create(
                workspace=ws, actor=None, scope_type="workspace",
                amount_usd=Decimal("1000000"), period="month",
            )  # fmt: skip
            for n in range(max(1, keys * share // 4)):
                _key, raw = gateway_key_create(workspace=ws, name=f"soak-{n}", member=member)
                out.append((raw, streamed))
        ws_ids.append(ws.pk)
    return ws_ids, out


def nginx_conf(tmp: Path, listen: int, ports: list[int]) -> Path:
    """The shipped example with this run's ports: its upstream block lists the 4 gateways."""
    text = (ROOT / "deploy" / "nginx" / "alephant.conf").read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n" for p in ports)
    text = re.sub(r"(?m)^    server 127\.0\.0\.1:810\d[^\n]*\n", "", text, count=2)
    text = text.replace("upstream alephant_gateway {\n", "upstream alephant_gateway {\n" + servers)
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen} backlog=4096;")
    (tmp / "alephant.conf").write_text(text)
    temp = "".join(
        f"    {k}_temp_path {tmp}/{k};\n"
        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = tmp / "nginx-front.conf"
    main.write_text(
        f"{user}worker_processes 1;\nevents {{ worker_connections 4096; }}\n"
        f"http {{\n    access_log off;\n{temp}    include {tmp}/alephant.conf;\n}}\n"
    )
    return main


@dataclass
class Fleet:
    """Every process of the soak, by name, and the front URL."""

    procs: dict[str, Proc] = field(default_factory=dict)
    front: str = ""

    def pid(self, name: str) -> int:
        proc = self.procs[name].proc
        assert proc is not None
        return proc.pid

    def stop(self) -> None:
        # Celery's warm shutdown: SIGTERM to the main process only (its pool children would
        # report themselves lost if they got the group's SIGTERM too).
        worker = self.procs["celery-worker"].proc
        if worker is not None and worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        for proc in reversed(list(self.procs.values())):
            proc.kill()


def start_fleet(env: dict[str, str], tmp: Path) -> Fleet:
    fleet = Fleet()
    py = sys.executable
    ports = [free_port() for _ in range(GATEWAYS)]
    for n, port in enumerate(ports):
        cmd = [py, "-m", "uvicorn", "gateway.asgi:application", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--lifespan", "on", "--no-access-log", "--log-level"]
        cmd += ["warning", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1"]
        fleet.procs[f"gateway-{n + 1}"] = Proc(cmd, env, f"gateway-{n + 1}").start()
    for n in range(WRITERS):
        cmd = [py, "manage.py", "ledger_writer"]
        fleet.procs[f"ledger-writer-{n + 1}"] = Proc(cmd, env, "ledger-writer").start()
    celery = [py, "-m", "celery", "-A", "alephant"]
    worker = [*celery, "worker", "-l", "warning", "--concurrency", "2"]
    fleet.procs["celery-worker"] = Proc(worker, env, "celery-worker").start()
    beat = [*celery, "beat", "-l", "warning", "--schedule", str(tmp / "celerybeat-schedule")]
    fleet.procs["celery-beat"] = Proc(beat, env, "celery-beat").start()
    for n, port in enumerate(ports):
        url = f"http://127.0.0.1:{port}/v1/models"
        wait_http(url, timeout=120, proc=fleet.procs[f"gateway-{n + 1}"])
    listen = free_port()
    conf = nginx_conf(tmp, listen, ports)
    nginx = [ensure_tool("nginx", "nginx-light"), "-p", str(tmp), "-c", str(conf)]
    nginx += ["-g", f"daemon off; pid {tmp}/front.pid; error_log {tmp}/front.err;"]
    fleet.procs["nginx-front"] = Proc(nginx, None, "nginx-front").start()
    fleet.front = f"http://127.0.0.1:{listen}"
    wait_http(fleet.front + "/v1/models", timeout=10)
    return fleet


@dataclass
class Load:
    """What the client saw: per minute (latencies of answered calls, failures) and the request
    id of every answered call."""

    minutes: dict[int, list[float]] = field(default_factory=dict)
    failures: dict[int, int] = field(default_factory=dict)
    answered: list[str] = field(default_factory=list)
    sent: int = 0
    gateway_rss: dict[int, float] = field(default_factory=dict)  # minute -> MB, all gateways


async def one_call(
    session: aiohttp.ClientSession, url: str, key: tuple[str, bool], n: int, load: Load, t0: float
) -> None:
    raw, streamed = key
    body: dict = {
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": f"soak call {n}"}],
    }
    if streamed:
        body["stream"] = True
    started = time.monotonic()
    minute = int((started - t0) // 60)
    headers = {"authorization": f"Bearer {raw}", "content-type": "application/json"}
    try:
        async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
            await resp.read()
            ok = resp.status == 200
            request_id = resp.headers.get("alephant-request-id", "")
    except (aiohttp.ClientError, TimeoutError):
        ok = False
    if ok:
        load.minutes.setdefault(minute, []).append((time.monotonic() - started) * 1000)
        load.answered.append(request_id)
    else:
        load.failures[minute] = load.failures.get(minute, 0) + 1


async def drive(
    front: str, keys: list[tuple[str, bool]], rate: float, seconds: float, load: Load, on_tick
) -> None:
    """Open loop: call n starts at t0 + n / rate whatever the earlier calls are doing."""
    connector = aiohttp.TCPConnector(limit=1024)
    timeout = aiohttp.ClientTimeout(total=30)
    url = front + "/v1/chat/completions"
    tasks: set[asyncio.Task] = set()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.monotonic()
        n = 0
        while (now := time.monotonic()) - t0 < seconds:
            due = int((now - t0) * rate) + 1
            while n < due:
                task = asyncio.create_task(one_call(session, url, keys[n % len(keys)], n, load, t0))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
            on_tick(now - t0)
            await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
        load.sent = n
        if tasks:
            await asyncio.wait(tasks)


def drained(client: redis.Redis, timeout: float = 120) -> bool:
    """The usage stream is fully read and acknowledged by the ledger writers."""
    from gateway.hotpath.usage import GROUP, STREAM

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        groups = {g["name"]: g for g in client.xinfo_groups(STREAM)}
        group = groups.get(GROUP.encode()) or groups.get(GROUP)
        if group and group["pending"] == 0 and (group.get("lag") or 0) == 0:
            return True
        time.sleep(0.5)
    return False


def ledger_check(ws_ids: list[int], answered: list[str]) -> tuple[int, int, int]:
    """(lost, duplicated, extra): answered calls without a row, ids with more than one row,
    rows for calls the client did not see answered (timeouts, errors)."""
    from django.db import connection

    from workspaces.tenancy import workspace_scope

    counts: dict[str, int] = {}
    for ws_id in ws_ids:
        with workspace_scope(ws_id), connection.cursor() as cursor:
            cursor.execute("SELECT request_id, count(*) FROM billing_usagerecord GROUP BY 1")
            counts.update(dict(cursor.fetchall()))
    seen = set(answered)
    lost = sum(1 for rid in seen if rid not in counts)
    duplicated = sum(1 for c in counts.values() if c > 1) + (len(answered) - len(seen))
    extra = sum(1 for rid in counts if rid not in seen)
    return lost, duplicated, extra


def rss(fleet: Fleet) -> dict[str, float]:
    return {name: rss_mb(fleet.pid(name)) for name in fleet.procs}


def report(load: Load, snaps: list[dict[str, float]], check: tuple[int, int, int], info: dict):
    print(f"\n# Soak: {info['minutes']} min at {info['rate']:g} calls/s offered")
    print(f"load average at start {info['load0']}, at end {info['load1']}")
    print("\n| minute | answered | failed | p50 ms | p99 ms | gateways' RSS MB |")
    print("|---|---|---|---|---|---|")
    for minute in sorted(set(load.minutes) | set(load.failures)):
        lat = sorted(load.minutes.get(minute, [])) or [float("nan")]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(
            f"| {minute + 1} | {len(load.minutes.get(minute, []))} | "
            f"{load.failures.get(minute, 0)} | {statistics.median(lat):.1f} | {p99:.1f} "
            f"| {load.gateway_rss.get(minute, float('nan')):.1f} |"
        )
    print("\n| process | RSS start MB | after warm-up | end | growth after warm-up |")
    print("|---|---|---|---|---|")
    start, warm, end = snaps
    for name in start:
        growth = (end[name] - warm[name]) / warm[name] * 100 if warm[name] else float("nan")
        print(
            f"| {name} | {start[name]:.1f} | {warm[name]:.1f} | {end[name]:.1f} | {growth:+.1f} % |"
        )
    lost, duplicated, extra = check
    print(
        f"\nsent {load.sent}, answered {len(load.answered)}, ledger: lost {lost}, "
        f"duplicated {duplicated}, rows without an answered call {extra}"
    )


def main() -> None:
    minutes = float(os.environ.get("SOAK_MINUTES", "10"))
    rate = float(os.environ.get("SOAK_RATE", "200"))
    seconds, warmup = minutes * 60, min(60.0, minutes * 30)
    mock = MockStack().start()
    tmp = Path(tempfile.mkdtemp(prefix="alephant-soak-"))
    env = soak_env(mock.redis_url, tmp / "spool")
    os.environ.update(env)  # this process reads the same database (tenants, ledger check)
    ensure_database(env)
    ws_ids, keys = tenants(mock.upstream, keys=max(4, int(rate * 60 / KEY_RPM) + 1))
    fleet = start_fleet(env, tmp)
    try:
        time.sleep(5)  # writers and the Celery worker connected
        snaps = [rss(fleet)]
        load = Load()

        def on_tick(elapsed: float) -> None:
            if len(snaps) == 1 and elapsed >= warmup:
                snaps.append(rss(fleet))
            minute = int(elapsed // 60)
            if elapsed % 60 >= 55 and minute not in load.gateway_rss:  # the minute's end
                load.gateway_rss[minute] = sum(
                    rss_mb(fleet.pid(f"gateway-{n + 1}")) for n in range(GATEWAYS)
                )

        load0 = os.getloadavg()
        print(f"[soak] {len(keys)} keys, {GATEWAYS} gateways, {WRITERS} writers, {minutes:g} min")
        asyncio.run(drive(fleet.front, keys, rate, seconds, load, on_tick))
        load1 = os.getloadavg()
        snaps.append(rss(fleet))
        client = redis.Redis.from_url(mock.redis_url)
        if not drained(client):
            print("[soak] the ledger writers did not drain the stream within 2 minutes")
        check = ledger_check(ws_ids, load.answered)
        info = {
            "minutes": f"{minutes:g}",
            "rate": rate,
            "load0": " ".join(f"{x:.1f}" for x in load0),
            "load1": " ".join(f"{x:.1f}" for x in load1),
        }
        report(load, snaps, check, info)
    finally:
        fleet.stop()
        mock.stop()


if __name__ == "__main__":
    main()
