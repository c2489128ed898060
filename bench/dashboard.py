"""Dashboard bench: render the finance overview and a member drill-down over 1,000,000 usage rows.

    python -m bench.dashboard [--rows 1000000] [--renders 20]

`run() -> list[dict]` gives the rows for `make bench`. It uses a database of its own
(`ALEPHANT_BENCH_DB`, default `alephant_bench`, created and migrated as the owner role): the
ledger is bulk-generated once with `INSERT ... SELECT generate_series` as the owner (inside the
bench workspace's RLS scope), spread over the last 30 days across 50 members, 20 agents,
5 departments and 6 models; the rollups are rebuilt once. Later runs reuse the data.

Each page is rendered through Django's full stack (middleware, workspace scope, templates) with
the test client, logged in as the finance member, as the app role; p50/p95 per page are
reported next to the ledger row count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH_DB = os.environ.get("ALEPHANT_BENCH_DB", "alephant_bench")
WORKSPACE_SLUG = "bench-co"
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("openai", "gpt-4.1-mini"),
]


def _with_db(url: str, name: str) -> str:
    import dj_database_url

    p = dj_database_url.parse(url)
    return f"postgres://{p['USER']}:{p['PASSWORD']}@{p['HOST']}:{p['PORT']}/{name}"


def _bench_env() -> dict[str, str]:
    from alephant.env import load_dotenv

    load_dotenv()
    app = os.environ.get("DATABASE_URL", "postgres://alephant_app:alephant_app@127.0.0.1:54329/x")
    owner = os.environ.get("DATABASE_OWNER_URL", app)
    return {
        **os.environ,
        "DATABASE_URL": _with_db(app, BENCH_DB),
        "DATABASE_OWNER_URL": _with_db(owner, BENCH_DB),
        "DJANGO_DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "alephant.settings.dev",
    }


def _ensure_database(env: dict[str, str]) -> None:
    import psycopg

    with psycopg.connect(_with_db(env["DATABASE_OWNER_URL"], "postgres"), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            c.execute(f'CREATE DATABASE "{BENCH_DB}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env={**env, "ALEPHANT_DB_AS_OWNER": "1"},
        check=True,
    )


def run(rows: int = 1_000_000, renders: int = 20) -> list[dict]:
    """Prepare the bench database, then measure in a child process pointed at it."""
    env = _bench_env()
    _ensure_database(env)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.dashboard",
            "--worker",
            "--rows",
            str(rows),
            "--renders",
            str(renders),
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- inside the child (settings point at the bench database) ---------------------------------


def _setup_workspace():
    from django.db import transaction

    from tests.cast import make_user
    from workspaces import system
    from workspaces.models import Agent, Department, Member, Role, User, Workspace
    from workspaces.services.workspaces import (
        agent_create,
        department_create,
        member_add,
        workspace_create,
    )
    from workspaces.tenancy import workspace_scope

    finance_email = "finance@bench.alephant.dev"
    with transaction.atomic():
        owner = User.objects.filter(email="owner@bench.alephant.dev").first()
        if owner is None:
            owner = make_user("owner@bench.alephant.dev")
            workspace_create(name="Bench Co", owner=owner, slug=WORKSPACE_SLUG)
        ws_id = next(
            m.workspace_id
            for m in system.user_memberships(owner.pk)
            if m.workspace_slug == WORKSPACE_SLUG
        )
        with workspace_scope(ws_id):
            ws = Workspace.objects.get(pk=ws_id)
            if not Department.objects.filter(workspace=ws).exists():
                depts = [department_create(workspace=ws, name=f"Dept {i}") for i in range(5)]
                finance = make_user(finance_email)
                member_add(workspace=ws, user=finance, role=Role.FINANCE)
                members = [
                    member_add(
                        workspace=ws,
                        user=make_user(f"m{i}@bench.alephant.dev"),
                        role=Role.MEMBER,
                        department=depts[i % 5],
                    )
                    for i in range(50)
                ]
                for i in range(20):
                    agent_create(
                        workspace=ws,
                        slug=f"agent-{i}",
                        name=f"Agent {i}",
                        owner=members[i],
                        department=depts[i % 5],
                    )
            members = list(
                Member.objects.filter(workspace=ws, role=Role.MEMBER)
                .order_by("pk")
                .values_list("pk", "department_id")
            )
            agents = list(
                Agent.objects.filter(workspace=ws)
                .order_by("pk")
                .values_list("pk", "owner_id", "department_id")
            )
    return ws, finance_email, members, agents


def _generate(ws, members, agents, rows: int) -> tuple[int, float]:
    """Bulk-insert ledger rows up to `rows` as the owner role; returns (count, seconds)."""
    from django.conf import settings
    from django.db import connection

    from billing.models import UsageRecord
    from tests.conftest import connect_as_app, connect_as_owner
    from workspaces.tenancy import workspace_scope

    with workspace_scope(ws.pk):
        have = UsageRecord.objects.count()
    if have >= rows:
        return have, 0.0
    started = time.perf_counter()
    connect_as_owner()
    try:
        member_ids = "ARRAY[" + ",".join(str(m[0]) for m in members) + "]::bigint[]"
        dept_ids = "ARRAY[" + ",".join(str(m[1]) for m in members) + "]::bigint[]"
        agent_ids = "ARRAY[" + ",".join(str(a[0]) for a in agents) + "]::bigint[]"
        providers = "ARRAY[" + ",".join(f"'{p}'" for p, _ in MODELS) + "]"
        models = "ARRAY[" + ",".join(f"'{m}'" for _, m in MODELS) + "]"
        table = UsageRecord._meta.db_table
        with workspace_scope(ws.pk), connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {table} (workspace_id, request_id, member_id, department_id,
                    agent_id, session_id, session_path, session_name, properties, provider,
                    model, endpoint, input_tokens, output_tokens, cached_tokens,
                    reasoning_tokens, cost_usd, saved_usd, cache_hit, status_code, error_type,
                    estimated, stream, latency_ms, fingerprint, created_at)
                SELECT %(ws)s, 'bench-' || g, ({member_ids})[1 + g %% 50],
                    ({dept_ids})[1 + g %% 50],
                    CASE WHEN g %% 3 = 0 THEN ({agent_ids})[1 + g %% 20] END,
                    CASE WHEN g %% 3 = 0 THEN 'run-' || (g / 30) ELSE '' END, '', '',
                    jsonb_build_object('env', CASE WHEN g %% 4 = 0 THEN 'dev' ELSE 'prod' END),
                    ({providers})[1 + g %% 6], ({models})[1 + g %% 6], 'chat',
                    200 + g %% 3000, 20 + g %% 900, CASE WHEN g %% 7 = 0 THEN 100 ELSE 0 END, 0,
                    round((0.00001 + (g %% 997) * 0.0000137)::numeric, 12), 0, g %% 50 = 0,
                    CASE WHEN g %% 211 = 0 THEN 402 ELSE 200 END,
                    CASE WHEN g %% 211 = 0 THEN 'budget_exceeded' ELSE '' END,
                    false, g %% 2 = 0, 300 + g %% 4000, md5((g %% 50000)::text),
                    now() - (g * interval '30 days' / %(rows)s)
                FROM generate_series(%(lo)s, %(hi)s) AS g
            """,
                {"ws": ws.pk, "rows": rows, "lo": have + 1, "hi": rows},
            )
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {table}")
    finally:
        connect_as_app()
    del settings
    return rows, time.perf_counter() - started


def _measure(client, url: str, renders: int) -> tuple[float, float, int]:
    status = client.get(url).status_code  # warm caches, compile templates
    times = []
    for _ in range(renders):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        status = response.status_code
    times.sort()
    p95 = times[max(0, round(len(times) * 0.95) - 1)]
    return statistics.median(times), p95, status


def worker(rows: int, renders: int) -> list[dict]:
    import django

    django.setup()
    from django.test import Client
    from django.test.utils import setup_test_environment

    from attribution.models import SessionRollup, UsageRollup
    from attribution.services.rollups import rollup_rebuild_range, rollup_workspace
    from workspaces.models import User
    from workspaces.tenancy import workspace_scope

    setup_test_environment()  # allows the test client's host
    ws, finance_email, members, agents = _setup_workspace()
    count, gen_s = _generate(ws, members, agents, rows)
    from django.utils import timezone

    now = timezone.now()
    rebuild_s = 0.0
    with workspace_scope(ws.pk):
        built = (
            UsageRollup.objects.filter(dimension="member:model", granularity="hour").exists()
            and SessionRollup.objects.exists()
        )
        if gen_s or not built:
            t0 = time.perf_counter()
            rollup_rebuild_range(
                workspace=ws, start=now - dt.timedelta(days=31), end=now + dt.timedelta(hours=1)
            )
            rebuild_s = time.perf_counter() - t0
            rollup_workspace(workspace=ws)  # first run after a rebuild moves the watermark
        t0 = time.perf_counter()
        rollup_workspace(workspace=ws)  # steady state: the minute's beat with nothing new
        incremental_s = time.perf_counter() - t0
    client = Client()
    client.force_login(User.objects.get(email=finance_email))
    member_id = members[7][0]
    pages = [
        ("overview (month)", "/"),
        ("member drill-down (month)", f"/spend/members/{member_id}/"),
        ("sessions (month)", "/spend/sessions/"),
    ]
    out = []
    for name, url in pages:
        p50, p95, status = _measure(client, url, renders)
        out.append(
            {
                "bench": "dashboard",
                "case": name,
                "ledger_rows": count,
                "status": status,
                "renders": renders,
                "p50_ms": round(p50, 1),
                "p95_ms": round(p95, 1),
                "target_p95_ms": 300,
            }
        )
    out.append(
        {
            "bench": "dashboard",
            "case": "rollup rebuild 31 days (once)",
            "ledger_rows": count,
            "seconds": round(rebuild_s, 1),
            "generate_seconds": round(gen_s, 1),
        }
    )
    out.append(
        {
            "bench": "dashboard",
            "case": "incremental rollup, steady state (beat run, no new rows)",
            "ledger_rows": count,
            "seconds": round(incremental_s, 2),
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.rows, args.renders)))
        return
    for row in run(args.rows, args.renders):
        print(row)


if __name__ == "__main__":
    main()
