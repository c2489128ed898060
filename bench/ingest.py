"""`python -m bench.ingest`: how fast the ledger writer drains the usage stream, 1 and 2 writers.

    python -m bench.ingest [--events 60000] [--rounds 3] [--batch-size N]

A private `redis-server` (its own port and directory) holds the stream; Postgres is the dev
cluster, with a database of its own (`ALEPHANT_BENCH_INGEST_DB`, default `alephant_bench_ingest`,
created and migrated as the owner role) holding 20 workspaces with departments, members and
agents. Each run: the ledger table is emptied, the stream `alephant:usage` is pre-filled with
`--events` events shaped as the gateway writes them (`gateway.hotpath.call.usage_event`: several
workspaces, members, agents, sessions, models; 1 % of them replays of an earlier event, as a
spool replay or a reclaimed entry would be), then N writer processes (each `LedgerWriter.
run_forever`, the loop `manage.py ledger_writer` runs, as the app role under RLS) are started and,
once connected, released together. The clock stops when the stream is empty: entries are
deleted only after their batch committed, so every row is then in Postgres. Checked after each
run: rows == distinct events, no request id twice.

CPU per event: utime + stime of the writer processes, of their Postgres backends (+ the cluster's
WAL writer, background writer and checkpointer, shared with whatever else runs on the dev
cluster) and of the private redis-server, over the timed span. Rounds alternate the order of the
1- and 2-writer runs; figures are medians. Appends its section to `bench/results.md` (replacing
an older one).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.ingest_data import WORKSPACES, Tenant, make_events, tenants
from bench.wrk import cpu_seconds
from tests.gateway.servers import Proc, free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results.md")
HEADING = "# Ledger ingest"
BENCH_DB = os.environ.get("ALEPHANT_BENCH_INGEST_DB", "alephant_bench_ingest")


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


def bench_env() -> dict[str, str]:
    from alephant.env import load_dotenv

    load_dotenv()
    app = os.environ["DATABASE_URL"]
    owner = os.environ.get("DATABASE_OWNER_URL", app)
    return {
        **os.environ,
        "DATABASE_URL": _with_db(app, BENCH_DB),
        "DATABASE_OWNER_URL": _with_db(owner, BENCH_DB),
        "DJANGO_DEBUG": "0",  # DEBUG keeps every query in memory
        "DJANGO_SETTINGS_MODULE": "alephant.settings.dev",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def ensure_database(env: dict[str, str]) -> None:
    import psycopg

    with psycopg.connect(_with_db(env["DATABASE_OWNER_URL"], "postgres"), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            c.execute(f'CREATE DATABASE "{BENCH_DB}"')
    migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"]
    subprocess.run(migrate, cwd=ROOT, env={**env, "ALEPHANT_DB_AS_OWNER": "1"}, check=True)


def fill(client: redis.Redis, stream: str, events: list[bytes]) -> None:
    client.delete(stream)
    for start in range(0, len(events), 2000):
        pipe = client.pipeline(transaction=False)
        for raw in events[start : start + 2000]:
            pipe.xadd(stream, {"e": raw})
        pipe.execute()


def stored(tenants_: list[Tenant]) -> tuple[int, int]:
    """(rows, distinct request ids) over every bench workspace, each read inside its scope."""
    from django.db import connection

    from workspaces.tenancy import workspace_scope

    rows = distinct = 0
    for t in tenants_:
        with workspace_scope(t.workspace_id), connection.cursor() as cursor:
            cursor.execute("SELECT count(*), count(DISTINCT request_id) FROM billing_usagerecord")
            r, d = cursor.fetchone()
            rows, distinct = rows + r, distinct + d
    return rows, distinct


def empty_ledger(env: dict[str, str]) -> None:
    import psycopg

    with psycopg.connect(env["DATABASE_OWNER_URL"], autocommit=True) as c:
        c.execute("TRUNCATE billing_usagerecord")
        c.execute("ANALYZE billing_usagerecord")


# --- writer processes ---------------------------------------------------------------------------


class Writer:
    """A writer process: connects to Redis and Postgres, says `ready <backend pid>`, waits for a
    line on stdin, then runs `LedgerWriter.run_forever` until SIGTERM."""

    def __init__(self, env: dict[str, str], consumer: str, batch_size: int | None) -> None:
        cmd = [sys.executable, "-m", "bench.ingest", "--writer", consumer]
        if batch_size:
            cmd += ["--batch-size", str(batch_size)]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if line[:1] != ["ready"]:
            raise RuntimeError(f"writer {consumer} did not start ({line})")
        self.backend_pid = int(line[1])

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def writer_main(consumer: str, batch_size: int | None) -> None:
    import django

    django.setup()
    from django.db import connection

    from gateway.ledger_writer import BATCH_SIZE, LedgerWriter

    connection.settings_dict.setdefault("OPTIONS", {})["application_name"] = f"ingest-{consumer}"
    writer = LedgerWriter(consumer=consumer, batch_size=batch_size or BATCH_SIZE)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        print("ready", cursor.fetchone()[0], flush=True)
    sys.stdin.readline()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    writer.run_forever(stop)


def postgres_aux_pids() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE backend_type IN "
            "('walwriter', 'background writer', 'checkpointer')"
        )
        return [pid for (pid,) in cursor.fetchall()]


# --- one run ------------------------------------------------------------------------------------


@dataclass
class Run:
    writers: int
    events: int
    seconds: float
    cpu: dict[str, float]  # seconds over the timed span: writers, postgres, redis
    rows: int
    distinct: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    def cpu_us_per_event(self, part: str) -> float:
        return self.cpu[part] / self.events * 1e6


def one_run(ctx: Context, writers: int) -> Run:
    from gateway.hotpath.usage import STREAM

    empty_ledger(ctx.env)
    fill(ctx.redis, STREAM, ctx.events)
    procs = [Writer(ctx.env, f"w{i}", ctx.batch_size) for i in range(writers)]
    try:
        parts = {
            "writers": [p.proc.pid for p in procs],
            "postgres": [p.backend_pid for p in procs] + ctx.pg_aux,
            "redis": [ctx.redis_pid],
        }
        before = {part: cpu_seconds(pids) for part, pids in parts.items()}
        started = time.perf_counter()
        for p in procs:
            p.go()
        while ctx.redis.xlen(STREAM):
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        cpu = {part: cpu_seconds(pids) - before[part] for part, pids in parts.items()}
    finally:
        for p in procs:
            p.stop()
    rows, distinct = stored(ctx.tenants)
    return Run(writers, len(ctx.events), seconds, cpu, rows, distinct)


@dataclass
class Context:
    env: dict[str, str]
    redis: redis.Redis
    redis_pid: int
    tenants: list[Tenant]
    events: list[bytes]
    pg_aux: list[int]
    batch_size: int | None


def private_redis(tmp: str) -> tuple[Proc, redis.Redis]:
    port = free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    proc = Proc([*cmd, "--appendonly", "no", "--dir", tmp], name="redis").start()
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc, client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- report -------------------------------------------------------------------------------------


def table(runs: list[Run], expected: int) -> str:
    lines = [
        "| writers | events/s | spread | CPU us/event: writers | Postgres | Redis | total "
        "| CPU-bound events/s | cores it got | rows = distinct events | duplicates |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sorted({r.writers for r in runs}):
        mine = [r for r in runs if r.writers == n]
        rates = [r.rate for r in mine]
        rate = statistics.median(rates)

        def cpu(part: str, mine: list[Run] = mine) -> float:
            return statistics.median(r.cpu_us_per_event(part) for r in mine)

        total = statistics.median(sum(r.cpu_us_per_event(p) for p in r.cpu) for r in mine)
        ok = all(r.rows == expected for r in mine)
        dups = sum(r.rows - r.distinct for r in mine)
        lines.append(
            f"| {n} | {rate:,.0f} | {(max(rates) - min(rates)) / rate * 100:.0f} % "
            f"| {cpu('writers'):.0f} | {cpu('postgres'):.0f} | {cpu('redis'):.0f} | {total:.0f} "
            f"| {min(n, os.cpu_count() or 1) / total * 1e6:,.0f} "
            f"| {statistics.median(sum(r.cpu.values()) / r.seconds for r in mine):.2f} "
            f"| {'yes' if ok else 'NO'} ({mine[0].rows:,} of {expected:,}) | {dups} |"
        )
    return "\n".join(lines)


def write_results(section: str) -> None:
    """Replace this bench's section of `bench/results.md` (the hot-path bench rewrites the rest)."""
    text = RESULTS.read_text() if RESULTS.exists() else ""
    head, _, tail = text.partition(HEADING)
    rest = tail.partition("\n# ")[2]
    text = head.rstrip() + ("\n\n" if head.strip() else "") + section
    if rest:
        text += "\n# " + rest
    RESULTS.write_text(text)


def measure(ctx: Context, rounds: int) -> list[Run]:
    runs = []
    for round_no in range(rounds):
        for writers in (1, 2) if round_no % 2 == 0 else (2, 1):
            run = one_run(ctx, writers)
            runs.append(run)
            print(
                f"  round {round_no + 1} writers={writers} {run.rate:8.0f} events/s"
                f"  {run.seconds:.2f} s  cpu us/event "
                + " ".join(f"{k} {run.cpu_us_per_event(k):.0f}" for k in run.cpu)
                + f"  rows {run.rows} distinct {run.distinct}",
                flush=True,
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=60_000, help="stream entries per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="the writer's default")
    parser.add_argument("--replays", type=float, default=0.01, help="share of replayed entries")
    parser.add_argument("--writer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer_main(args.writer, args.batch_size)
        return
    env = bench_env()
    ensure_database(env)
    os.environ.update(env)
    import django

    django.setup()
    started, load_before = time.time(), " / ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="alephant-ingest-") as tmp:
        redis_proc, client = private_redis(tmp)
        env["REDIS_URL"] = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        try:
            tenants_ = tenants()
            events = make_events(tenants_, args.events, replays=args.replays)
            assert redis_proc.proc is not None
            ctx = Context(
                env, client, redis_proc.proc.pid, tenants_, events, postgres_aux_pids(),
                args.batch_size,
            )  # fmt: skip
            runs = measure(ctx, args.rounds)
        finally:
            redis_proc.kill()
    result = table(runs, len(set(events)))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    note = (
        f"`python -m bench.ingest` (part of `make bench`), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load "
        f"average {load_before} at the start and {load} at the end; {args.events:,} stream "
        f"entries per run ({len(set(events)):,} distinct events, the rest replays) over "
        f"{WORKSPACES} workspaces, medians of {args.rounds} rounds (spread: max-min over the "
        "median); the clock runs from releasing the writers until the stream is empty (every "
        "batch committed). CPU: writer processes; their Postgres backends + WAL writer, "
        "background writer, checkpointer; the private redis-server. CPU-bound events/s: "
        "min(writers, cores) / total CPU per event, the rate when the writers have those cores "
        "to themselves (the measured rate also depends on whatever else the box runs); cores it "
        "got: that CPU over the run's wall time. "
        f"{time.time() - started:.0f} s in all."
    )
    print("\n" + result + "\n\n" + note)
    write_results(f"{HEADING}\n\n{note}\n\n{result}\n")
    wrong = [r for r in runs if r.rows != len(set(events)) or r.rows != r.distinct]
    if wrong:
        sys.exit(f"ledger rows wrong in {len(wrong)} run(s): not one row per distinct event")


if __name__ == "__main__":
    main()
