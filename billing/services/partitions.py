"""Monthly partitions of the usage ledger (`billing_usagerecord`, range on `created_at`).

* One partition per UTC month, `billing_usagerecord_pYYYY_MM`, covering
  `[YYYY-MM-01 00:00 UTC, next month)`; `ledger_partitions_ensure` keeps the current month and
  the next `AHEAD` months in place (beat task, `migrate`, the migration itself). Idempotent, and
  serialized by a transaction-level advisory lock, so concurrent runs don't race.
* A `DEFAULT` partition (`billing_usagerecord_default`) catches any row outside the created months
  (beat stopped for months, a skewed clock, a late row for an archived month): a row is never
  refused for want of a partition. When a month's partition is created later, the rows the
  default partition holds for that month are moved into it in the same transaction.
* Every partition gets what the parent has for tenancy: RLS enabled and forced with the same
  policies (`workspaces.rls.rls_sql`), and the app role's DML grants (never TRUNCATE). Queries
  through the parent are checked against the parent's policies; these cover direct reads of a
  partition by name.
* DDL needs the owner role: at run time `owner_cursor()` opens a connection as
  `DATABASE_OWNER_URL` (on the database the app is connected to), whatever role the process
  itself runs as.

The functions take a DB-API cursor (Django's or psycopg's), so the migration, the post-migrate
hook and the task share them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from workspaces.rls import rls_sql
from workspaces.system import app_role_name

PARENT = "billing_usagerecord"
DEFAULT_PARTITION = f"{PARENT}_default"
AHEAD = 2
# Serializes partition maintenance (create, move from default, archive, detach) across processes.
LOCK_KEY = 0x4C45_4447  # "LEDG"
_NAME = re.compile(rf"^{PARENT}_p(\d{{4}})_(\d{{2}})$")


def month_start(moment: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of the UTC month holding `moment`."""
    utc = moment.astimezone(dt.UTC)
    return dt.datetime(utc.year, utc.month, 1, tzinfo=dt.UTC)


def add_months(month: dt.datetime, count: int) -> dt.datetime:
    index = month.year * 12 + month.month - 1 + count
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def partition_name(month: dt.datetime) -> str:
    return f"{PARENT}_p{month:%Y_%m}"


def month_of_partition(name: str) -> dt.datetime | None:
    match = _NAME.match(name)
    if not match:
        return None
    return dt.datetime(int(match[1]), int(match[2]), 1, tzinfo=dt.UTC)


def _grant_sql(table: str) -> str:
    role = app_role_name()
    return f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO "{role}"'


def _exists(cursor: Any, table: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{table}"])
    return bool(cursor.fetchone()[0])


def is_partitioned(cursor: Any) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
    row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def month_partitions(cursor: Any) -> list[tuple[dt.datetime, str]]:
    """(month, name) of every month partition attached to the ledger, oldest first."""
    cursor.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(%s)",
        [PARENT],
    )
    found = [(month_of_partition(row[0]), row[0]) for row in cursor.fetchall()]
    return sorted((month, name) for month, name in found if month is not None)


def _protect(cursor: Any, table: str) -> None:
    """Tenancy as on every tenant table: forced RLS with the same policies, app-role DML."""
    cursor.execute(rls_sql(table))
    cursor.execute(_grant_sql(table))


def default_partition_ensure(cursor: Any) -> bool:
    if _exists(cursor, DEFAULT_PARTITION):
        return False
    cursor.execute(f'CREATE TABLE "{DEFAULT_PARTITION}" PARTITION OF "{PARENT}" DEFAULT')
    _protect(cursor, DEFAULT_PARTITION)
    return True


def partition_create(cursor: Any, *, month: dt.datetime) -> bool:
    """Create the partition of `month` (a month start) unless it exists; True if created.

    If the default partition already holds rows of that month, Postgres would refuse the new
    partition; they are moved into it first, in this transaction. The default partition's RLS is
    lifted for the move only (the owner sees no row to delete under FORCE) and restored before
    commit, so no other session ever sees it off.
    """
    name = partition_name(month)
    if _exists(cursor, name):
        return False
    bounds = [month, add_months(month, 1)]
    cursor.execute(
        f'SELECT EXISTS (SELECT 1 FROM "{DEFAULT_PARTITION}" '
        "WHERE created_at >= %s AND created_at < %s)",
        bounds,
    )
    if not cursor.fetchone()[0]:
        cursor.execute(
            f'CREATE TABLE "{name}" PARTITION OF "{PARENT}" FOR VALUES FROM (%s) TO (%s)', bounds
        )
    else:
        cursor.execute(
            f'CREATE TABLE "{name}" (LIKE "{PARENT}" INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        )
        cursor.execute(f'ALTER TABLE "{DEFAULT_PARTITION}" NO FORCE ROW LEVEL SECURITY')
        cursor.execute(
            f'WITH moved AS (DELETE FROM "{DEFAULT_PARTITION}" '
            "WHERE created_at >= %s AND created_at < %s RETURNING *) "
            f'INSERT INTO "{name}" SELECT * FROM moved',
            bounds,
        )
        cursor.execute(f'ALTER TABLE "{DEFAULT_PARTITION}" FORCE ROW LEVEL SECURITY')
        cursor.execute(
            f'ALTER TABLE "{PARENT}" ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)',
            bounds,
        )
    _protect(cursor, name)
    return True


def _stray_months(cursor: Any) -> list[dt.datetime]:
    """Months the default partition holds rows of (e.g. history loaded before its month had a
    partition)."""
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', created_at, 'UTC') FROM \"{DEFAULT_PARTITION}\""
    )
    return sorted(month_start(row[0]) for row in cursor.fetchall())


def _archived_months(cursor: Any) -> set[dt.datetime]:
    """Months retention archived (`billing.LedgerArchive`): their late rows stay in the default
    partition and are folded into the kept rollups, so the month is never re-created, even when
    the retention setting is later raised (re-archiving it would be refused on every run)."""
    if not _exists(cursor, "billing_ledgerarchive"):  # during migration 0013, before 0014
        return set()
    cursor.execute("SELECT month FROM billing_ledgerarchive")
    return {month_start(row[0]) for row in cursor.fetchall()}


def ledger_partitions_ensure(
    cursor: Any,
    *,
    now: dt.datetime,
    ahead: int = AHEAD,
    since: dt.datetime | None = None,
    keep_from: dt.datetime | None = None,
) -> list[str]:
    """The default partition, one per month from `since` (default: now) to now + `ahead`, and
    one for each month the default partition holds rows of, unless older than `keep_from` (the
    retention cutoff: an archived month is not brought back for a late row). Returns the names
    created (empty when everything was there: the usual case)."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
    created = [DEFAULT_PARTITION] if default_partition_ensure(cursor) else []
    month, last = month_start(since or now), add_months(month_start(now), ahead)
    months = []
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    archived = _archived_months(cursor)
    strays = [
        m
        for m in _stray_months(cursor)
        if (keep_from is None or m >= keep_from) and m not in archived
    ]
    for month in sorted(set(months) | set(strays)):
        if partition_create(cursor, month=month):
            created.append(partition_name(month))
    return created


@contextmanager
def owner_cursor() -> Iterator[psycopg.Cursor]:
    """A cursor of a new connection as the owner role, on the database the app is using (the
    test database under pytest); one transaction, committed when the block exits cleanly."""
    dbname = connection.settings_dict["NAME"]
    # Client-side binding, as Django's backend does: DDL takes no server-side parameters.
    with psycopg.connect(
        settings.DATABASE_OWNER_URL, dbname=dbname, cursor_factory=psycopg.ClientCursor
    ) as conn:
        with conn.cursor() as cursor:
            yield cursor


def ledger_partitions_ensure_as_owner(
    *, now: dt.datetime, keep_from: dt.datetime | None = None
) -> list[str]:
    with owner_cursor() as cursor:
        return ledger_partitions_ensure(cursor, now=now, keep_from=keep_from)


def ledger_partitions_after_migrate(*, using: str = "default", **_kwargs: Any) -> None:
    """post_migrate (every `migrate`, `make run` included, as the owner): the coming months'
    partitions exist on a fresh install or after a long pause, even before beat first runs."""
    conn = connections[using]
    with transaction.atomic(using=using), conn.cursor() as cursor:
        if not is_partitioned(cursor) or not _owns_ledger(cursor):
            return  # migrated back before 0013, or not the owner (can't create partitions)
        ledger_partitions_ensure(cursor, now=timezone.now())


def _owns_ledger(cursor: Any) -> bool:
    cursor.execute(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
        "WHERE oid = to_regclass(%s)",
        [PARENT],
    )
    row = cursor.fetchone()
    return bool(row and row[0])
