"""The partitioned ledger: month routing, RLS on every partition, idempotent replays across a
month boundary, the beat task, and retention (archive file, detach, rollups keep history).

Transactional tests: partition DDL and the archive run on their own owner-role connection,
which sees only committed rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.db.utils import ProgrammingError

from attribution.periods import period_for
from attribution.selectors import spend_totals
from attribution.services.rollups import rollup_rebuild_range
from billing.models import UsageRecord
from billing.services import ledger_retention
from billing.services.ledger_retention import archive_totals, ledger_retention_run
from billing.services.partitions import (
    DEFAULT_PARTITION,
    PARENT,
    add_months,
    ledger_partitions_after_migrate,
    month_start,
    owner_cursor,
    partition_create,
    partition_name,
)
from billing.tasks import ledger_partitions_maintain
from gateway.ledger_writer import LedgerWriter
from tests.billing.test_ledger_writer import event, push
from tests.conftest import connect_as_app, connect_as_owner
from tests.workspaces.test_rls import tenant_tables_rls
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db(transaction=True)
UTC = dt.UTC


def _month(year: int, month: int) -> dt.datetime:
    return dt.datetime(year, month, 1, tzinfo=UTC)


def _create_partitions(*months: dt.datetime) -> None:
    with owner_cursor() as cursor:
        for month in months:
            partition_create(cursor, month=month)


def _record(workspace_id: int, request_id: str, at: dt.datetime, cost: str = "0.25", **kw):
    with workspace_scope(workspace_id):
        return UsageRecord.objects.create(
            workspace_id=workspace_id,
            request_id=request_id,
            provider="openai",
            model="gpt-4o-mini",
            endpoint="chat",
            input_tokens=100,
            output_tokens=10,
            cost_usd=Decimal(cost),
            created_at=at,
            **kw,
        )


def _where(workspace_id: int) -> dict[str, str]:
    """request_id -> the partition holding it (seen as the app role, through the parent)."""
    with workspace_scope(workspace_id), connection.cursor() as cursor:
        cursor.execute(f"SELECT request_id, tableoid::regclass::text FROM {PARENT}")
        return dict(cursor.fetchall())


def _exists(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        return cursor.fetchone()[0]


def test_the_ledger_is_partitioned_with_keys_holding_created_at(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE relname = %s", [PARENT])
        assert cursor.fetchone()[0] == "p"
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('p', 'u') ORDER BY 1",
            [PARENT],
        )
        assert cursor.fetchall() == [
            ("billing_usagerecord_pkey", "PRIMARY KEY (id, created_at)"),
            ("usage_request_id_created_at", "UNIQUE (request_id, created_at)"),
        ]
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [PARENT])
        assert cursor.fetchone()[0] == "public.billing_usagerecord_id_seq"
    this_month = month_start(dt.datetime.now(UTC))
    for ahead in range(3):  # made by the migration and post_migrate: current month + 2
        assert _exists(partition_name(add_months(this_month, ahead)))
    assert _exists(DEFAULT_PARTITION)


def test_rows_route_by_month_and_the_default_partition_catches_the_rest(cast):
    ws = cast.workspace.pk
    now = dt.datetime.now(UTC)
    _record(ws, "now", now)
    _record(ws, "next", add_months(month_start(now), 1) + dt.timedelta(days=3))
    far = _month(2091, 5) + dt.timedelta(days=9)
    record = _record(ws, "far", far)
    assert _where(ws) == {
        "now": partition_name(month_start(now)),
        "next": partition_name(add_months(month_start(now), 1)),
        "far": DEFAULT_PARTITION,  # no partition for May 2091: kept, not refused
    }
    # Creating May 2091 later moves its rows out of the default partition.
    _create_partitions(_month(2091, 5))
    assert _where(ws)["far"] == partition_name(_month(2091, 5))
    with workspace_scope(ws):
        assert UsageRecord.objects.get(pk=record.pk).created_at == far  # pk lookups still work
    assert [name for name, ok in tenant_tables_rls() if not ok] == []


def test_a_partition_made_at_run_time_has_rls_grants_and_isolation(cast):
    month = _month(2090, 2)
    _create_partitions(month)
    table = partition_name(month)
    assert table in {name for name, ok in tenant_tables_rls() if ok}
    a, b = cast.workspace.pk, cast.other_workspace.pk
    _record(a, "a-secret", month + dt.timedelta(days=1))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(current_user, %s, 'SELECT'), "
            "has_table_privilege(current_user, %s, 'INSERT'), "
            "has_table_privilege(current_user, %s, 'TRUNCATE')",
            [table, table, table],
        )
        assert cursor.fetchone() == (True, True, False)
    # Read by name as the app role: B's scope and no scope see nothing of A's row.
    for scope in (b, None):
        with connection.cursor() as cursor:
            if scope is None:
                cursor.execute(f"SELECT count(*) FROM {table}")
                assert cursor.fetchone()[0] == 0
                continue
            with workspace_scope(scope):
                cursor.execute(f"SELECT count(*) FROM {table}")
                assert cursor.fetchone()[0] == 0
    with workspace_scope(a), connection.cursor() as cursor:
        cursor.execute(f"SELECT request_id FROM {table}")
        assert cursor.fetchall() == [("a-secret",)]
    with workspace_scope(b), pytest.raises(ProgrammingError, match="row-level security"):
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (id, workspace_id, request_id, session_id, session_path,"
                " session_name, properties, provider, model, endpoint, input_tokens,"
                " output_tokens, cached_tokens, reasoning_tokens, cost_usd, saved_usd,"
                " cache_hit, status_code, error_type, estimated, stream, latency_ms,"
                " fingerprint, created_at) VALUES (nextval('billing_usagerecord_id_seq'), %s,"
                " 'stolen', '', '', '', '{}', 'x', 'y', 'z', 0, 0, 0, 0, 0, 0, false, 200, '',"
                " false, false, 0, '', %s)",
                [a, month + dt.timedelta(days=2)],
            )


def test_replayed_events_store_one_row_each_across_a_month_boundary(cast, redis_client):
    ws = cast.workspace.pk
    boundary = add_months(month_start(dt.datetime.now(UTC)), 1)
    events = [
        event(ws, "before", created_at=(boundary - dt.timedelta(milliseconds=1)).timestamp()),
        event(ws, "at", created_at=boundary.timestamp()),
        event(ws, "now"),
    ]
    writer = LedgerWriter(redis_client, consumer="partitions")
    for _replay in range(3):
        push(redis_client, *events)
        assert writer.drain() == 3
    with workspace_scope(ws):
        counts = dict(
            UsageRecord.objects.values("request_id")
            .annotate(n=Count("id"))
            .values_list("request_id", "n")
        )
    assert counts == {"before": 1, "at": 1, "now": 1}
    where = _where(ws)
    assert where["before"] == partition_name(add_months(boundary, -1))
    assert where["at"] == partition_name(boundary)


def test_beat_task_creates_missing_partitions_once(db):
    assert settings.CELERY_BEAT_SCHEDULE["billing-ledger-partitions"]["task"] == (
        "billing.ledger_partitions_maintain"
    )
    last = partition_name(add_months(month_start(dt.datetime.now(UTC)), 2))
    with owner_cursor() as cursor:  # as if the install predates that month's creation
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {last}")
        cursor.execute(f"DROP TABLE {last}")
    assert ledger_partitions_maintain() == {"created": [last], "archived": [], "refused": []}
    assert ledger_partitions_maintain() == {"created": [], "archived": [], "refused": []}
    assert (last, True) in tenant_tables_rls()


def test_beat_task_partitions_stray_history_unless_past_retention(cast, settings, tmp_path):
    settings.ALEPHANT_LEDGER_ARCHIVE_DIR = str(tmp_path)
    ws, month = cast.workspace.pk, _month(2015, 3)
    _record(ws, "history", month + dt.timedelta(days=5))  # e.g. loaded before its partition
    assert _where(ws)["history"] == DEFAULT_PARTITION
    settings.ALEPHANT_LEDGER_RETENTION_MONTHS = 1  # March 2015 is past retention: left alone
    assert partition_name(month) not in ledger_partitions_maintain()["created"]
    assert _where(ws)["history"] == DEFAULT_PARTITION
    settings.ALEPHANT_LEDGER_RETENTION_MONTHS = 0
    assert ledger_partitions_maintain()["created"] == [partition_name(month)]
    assert _where(ws)["history"] == partition_name(month)
    assert (partition_name(month), True) in tenant_tables_rls()


def test_post_migrate_hook_creates_partitions_as_the_owner_only(db):
    last = partition_name(add_months(month_start(dt.datetime.now(UTC)), 2))
    with owner_cursor() as cursor:
        cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {last}")
        cursor.execute(f"DROP TABLE {last}")
    ledger_partitions_after_migrate()  # as the app role: not the owner, skips quietly
    assert not _exists(last)
    connect_as_owner()  # as `migrate` runs it
    try:
        ledger_partitions_after_migrate()
    finally:
        connect_as_app()
    assert _exists(last) and (last, True) in tenant_tables_rls()


def test_a_month_bounded_query_reads_only_that_months_partition(cast):
    month = month_start(dt.datetime.now(UTC))
    with workspace_scope(cast.workspace.pk), connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN SELECT count(*) FROM {PARENT} WHERE workspace_id = %s "
            "AND created_at >= %s AND created_at < %s",
            [cast.workspace.pk, month, add_months(month, 1)],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert partition_name(month) in plan
    assert partition_name(add_months(month, 1)) not in plan and DEFAULT_PARTITION not in plan


# --- retention ---------------------------------------------------------------------------------


def _month_totals(workspace_id: int, month: dt.datetime):
    """What the dashboard shows for that month: the rollup totals, whole and per member."""
    with workspace_scope(workspace_id):
        from workspaces.models import Workspace

        workspace = Workspace.objects.get(pk=workspace_id)
        period = period_for("month", month.date(), workspace.tz)
        return spend_totals(workspace=workspace, period=period), spend_totals(
            workspace=workspace, period=period, dimension="model", key="openai/gpt-4o-mini"
        )


def _rollup(workspace_id: int, month: dt.datetime) -> None:
    with workspace_scope(workspace_id):
        from workspaces.models import Workspace

        workspace = Workspace.objects.get(pk=workspace_id)
        rollup_rebuild_range(workspace=workspace, start=month, end=add_months(month, 1))


def _fill(cast, month: dt.datetime) -> dict[int, tuple[int, Decimal]]:
    """Rows in A and B across the month, first and last instants included."""
    a, b = cast.workspace.pk, cast.other_workspace.pk
    last = add_months(month, 1) - dt.timedelta(microseconds=1)
    _record(a, f"{month:%Y%m}-a1", month, cost="1.000000000001")
    _record(a, f"{month:%Y%m}-a2", month + dt.timedelta(days=12), cost="2.5")
    _record(a, f"{month:%Y%m}-a3", last, cost="0.000000000009", session_name='a "quoted",\nname')
    _record(b, f"{month:%Y%m}-b1", month + dt.timedelta(days=20), cost="7")
    return {a: (3, Decimal("3.500000000010")), b: (1, Decimal("7"))}


def _archive_rows(path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as text:
        return list(csv.DictReader(text))


# Retention runs with a `now` in the past: only the test's own (past) months are old enough, the
# current partitions made by the migration stay for the tests that follow.


def test_retention_archives_detaches_and_the_dashboard_keeps_the_month(cast, tmp_path):
    old, kept = _month(2019, 1), _month(2019, 2)
    _create_partitions(old, kept)
    expected = _fill(cast, old)
    _record(cast.workspace.pk, "kept", kept + dt.timedelta(days=1))
    for ws in expected:
        _rollup(ws, old)
    before = {ws: _month_totals(ws, old) for ws in expected}
    assert before[cast.workspace.pk][0].cost == Decimal("3.500000000010")

    result = ledger_retention_run(
        now=_month(2019, 4) + dt.timedelta(days=9), months=2, directory=tmp_path
    )

    archived = {a.partition: a for a in result.archived}
    table = partition_name(old)
    assert table in archived and result.refused == []
    assert partition_name(kept) not in archived  # Feb is within 2 months of April: kept
    path = archived[table].path
    assert path == tmp_path / f"{table}.csv.gz" and not list(tmp_path.glob("*.part"))
    assert path.stat().st_mode & 0o777 == 0o600
    rows = _archive_rows(path)
    assert len(rows) == 4 == archived[table].rows
    assert archive_totals(path) == (4, Decimal("10.500000000010"))
    for ws, (count, cost) in expected.items():
        mine = [r for r in rows if int(r["workspace_id"]) == ws]
        assert (len(mine), sum(Decimal(r["cost_usd"]) for r in mine)) == (count, cost)
    assert 'a "quoted",\nname' in {r["session_name"] for r in rows}
    assert not _exists(table) and _exists(partition_name(kept))
    with workspace_scope(cast.workspace.pk):
        assert not UsageRecord.objects.filter(created_at__lt=kept).exists()
        assert UsageRecord.objects.filter(request_id="kept").exists()
    assert {ws: _month_totals(ws, old) for ws in expected} == before


def test_retention_builds_missing_rollups_before_detaching(cast, tmp_path):
    old = _month(2018, 6)
    _create_partitions(old)
    expected = _fill(cast, old)  # no rollup has run for that month
    assert _month_totals(cast.workspace.pk, old)[0].requests == 0

    result = ledger_retention_run(now=_month(2018, 10), months=3, directory=tmp_path)

    assert partition_name(old) in {a.partition for a in result.archived}
    for ws, (count, cost) in expected.items():
        totals = _month_totals(ws, old)[0]
        assert (totals.requests, totals.cost) == (count, cost)


def test_retention_refuses_a_month_whose_rollups_are_incomplete(cast, tmp_path, monkeypatch):
    old = _month(2017, 9)
    _create_partitions(old)
    _fill(cast, old)
    _rollup(cast.workspace.pk, old)  # B's rollups missing, and the rebuild below fails to run
    monkeypatch.setattr(ledger_retention, "_build_rollups", lambda *_a, **_k: None)

    result = ledger_retention_run(now=_month(2017, 11), months=1, directory=tmp_path)

    refused = {r.partition: r.reason for r in result.refused}
    assert partition_name(old) in refused
    assert str(cast.other_workspace.pk) in refused[partition_name(old)]
    assert partition_name(old) not in {a.partition for a in result.archived}
    assert _exists(partition_name(old))
    assert not (tmp_path / f"{partition_name(old)}.csv.gz").exists()
    with workspace_scope(cast.other_workspace.pk):
        assert UsageRecord.objects.filter(created_at__gte=old).count() >= 1


def test_retention_is_off_unless_configured(cast, tmp_path):
    old = _month(2016, 7)
    _create_partitions(old)
    _record(cast.workspace.pk, "old", old + dt.timedelta(days=1))
    assert settings.ALEPHANT_LEDGER_RETENTION_MONTHS == 0
    result = ledger_retention_run(now=_month(2040, 1), directory=tmp_path)
    assert (result.archived, result.refused) == ([], [])
    assert _exists(partition_name(old)) and list(tmp_path.iterdir()) == []
