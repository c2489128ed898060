"""Ledger retention: month partitions past `ALEPHANT_LEDGER_RETENTION_MONTHS` are archived to a
gzip CSV file, then detached and dropped. Unset or 0 keeps the ledger forever.

A month is kept while it is the current month or one of the N before it; older month
partitions go (the default partition is never archived: see `partitions.py`).

For each month, in order:

1. **Rollups first.** The dashboard's history of an archived month lives on in the attribution
   rollups, so they must hold the whole month: per workspace, the month's hourly `workspace`
   rollups must add up to the partition's row count and cost. Where they don't, the month is
   rebuilt from the ledger (`rollup_rebuild_range`), then checked again.
2. As the owner, in one transaction: the partition is locked against writes (`SHARE`: reads go
   on), the rollups are checked again (a mismatch now refuses the month, which stays attached),
   every row is written with `COPY` to `<archive dir>/<partition>.csv.gz` (a `.part` file,
   fsynced, renamed, directory fsynced), the file is read back and its row count and cost sum
   compared with the table's, a `LedgerArchive` row records the month (the rollups then add a
   late row of it to the kept history instead of rebuilding that window: see
   `attribution.services.archived`), and only then the partition is detached and dropped. A
   crash anywhere before the commit leaves the partition attached; the next run writes the file
   again.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import logging
import os
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings

from attribution.models import Dimension, Granularity, UsageRollup
from attribution.services.rollups import rollup_rebuild_range
from billing.models import LedgerArchive
from billing.services.partitions import (
    LOCK_KEY,
    PARENT,
    add_months,
    ledger_partitions_ensure_as_owner,
    month_partitions,
    month_start,
    owner_cursor,
)
from workspaces.models import Workspace
from workspaces.tenancy import workspace_scope

logger = logging.getLogger("alephant.ledger")

Totals = dict[int, tuple[int, Decimal]]  # workspace id -> (rows, cost_usd)
# How long the detach may wait for the parent's lock: a queued ACCESS EXCLUSIVE lock stalls
# every later ledger query behind it, so give up soon and retry on the next run.
DETACH_LOCK_TIMEOUT = "3s"


class ArchiveMismatch(RuntimeError):
    pass


@dataclass(frozen=True)
class Archived:
    partition: str
    path: Path
    rows: int
    cost_usd: Decimal


@dataclass(frozen=True)
class Refused:
    partition: str
    reason: str


@dataclass
class RetentionResult:
    archived: list[Archived] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def retention_months() -> int:
    return max(0, int(getattr(settings, "ALEPHANT_LEDGER_RETENTION_MONTHS", 0) or 0))


def retention_cutoff(*, now: dt.datetime, months: int | None = None) -> dt.datetime | None:
    """The first month kept (months before it are archived), or None when retention is off."""
    months = retention_months() if months is None else months
    return add_months(month_start(now), -months) if months > 0 else None


def ledger_partitions_keep_up(*, now: dt.datetime) -> list[str]:
    """The partitions the ledger needs at `now` (the coming months, and the months of rows the
    default partition holds, unless past retention), made as the owner; the names created."""
    return ledger_partitions_ensure_as_owner(now=now, keep_from=retention_cutoff(now=now))


def archive_dir() -> Path:
    return Path(settings.ALEPHANT_LEDGER_ARCHIVE_DIR)


def _ledger_totals(cursor: Any, table: str) -> Totals:
    cursor.execute(
        f'SELECT workspace_id, count(*), coalesce(sum(cost_usd), 0) FROM "{table}" GROUP BY 1'
    )
    return {int(ws): (int(n), Decimal(cost)) for ws, n, cost in cursor.fetchall()}


def _rollup_totals(cursor: Any, month: dt.datetime) -> Totals:
    # Hour buckets are UTC hours, so a UTC month is exactly its hours (days are local days).
    cursor.execute(
        f"SELECT workspace_id, coalesce(sum(requests), 0), coalesce(sum(cost_usd), 0) "
        f"FROM {UsageRollup._meta.db_table} WHERE granularity = %s AND dimension = %s "
        "AND key = '' AND bucket_start >= %s AND bucket_start < %s GROUP BY 1",
        [Granularity.HOUR, Dimension.WORKSPACE, month, add_months(month, 1)],
    )
    return {int(ws): (int(n), Decimal(cost)) for ws, n, cost in cursor.fetchall()}


def unrolled_workspaces(cursor: Any, *, table: str, month: dt.datetime) -> list[int]:
    """Workspaces whose rollups of `month` don't match the partition's rows (as the owner, who
    reads every workspace through the `system_read` policy)."""
    ledger, rollups = _ledger_totals(cursor, table), _rollup_totals(cursor, month)
    return sorted(ws for ws, totals in ledger.items() if rollups.get(ws) != totals)


def _build_rollups(workspace_ids: list[int], month: dt.datetime) -> None:
    for workspace_id in workspace_ids:
        with workspace_scope(workspace_id):
            workspace = Workspace.objects.get(pk=workspace_id)
            rollup_rebuild_range(workspace=workspace, start=month, end=add_months(month, 1))
        logger.info("ledger retention: rebuilt rollups of %s for workspace %s", month, workspace_id)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_archive(cursor: Any, table: str, path: Path) -> None:
    # Tenant data (sessions, properties, spend): readable by this service's user only.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            copy_sql = (
                f'COPY (SELECT * FROM "{table}" ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)'
            )
            with cursor.copy(copy_sql) as copy:
                for block in copy:
                    gz.write(block)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(part, path)
    _fsync_dir(path.parent)


def archive_totals(path: Path) -> tuple[int, Decimal]:
    """(rows, sum of cost_usd) read back from an archive file."""
    rows, cost = 0, Decimal(0)
    with gzip.open(path, "rt", newline="", encoding="utf-8") as text:
        for record in csv.DictReader(text):
            rows += 1
            cost += Decimal(record["cost_usd"])
    return rows, cost


def _record_archive(cursor: Any, *, month: dt.datetime, table: str, path: Path) -> None:
    """The month's `LedgerArchive` row, in the transaction that drops it: from then on the
    rollups add late rows of that month to its windows instead of rebuilding them."""
    cursor.execute(f'SELECT coalesce(max(id), 0) FROM "{PARENT}"')
    last_id = int(cursor.fetchone()[0])
    cursor.execute(
        f"INSERT INTO {LedgerArchive._meta.db_table} "
        "(month, partition, file, last_record_id, archived_at) VALUES (%s, %s, %s, %s, now()) "
        "ON CONFLICT (month) DO NOTHING",
        [month, table, str(path), last_id],
    )


def ledger_partition_archive(
    *, month: dt.datetime, table: str, directory: Path
) -> Archived | Refused:
    """Archive, detach and drop one month partition (see the module docstring)."""
    with owner_cursor() as cursor:
        missing = unrolled_workspaces(cursor, table=table, month=month)
    if missing:
        _build_rollups(missing, month)
    path = directory / f"{table}.csv.gz"
    with owner_cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cursor.execute(f'LOCK TABLE "{table}" IN SHARE MODE')
        still = unrolled_workspaces(cursor, table=table, month=month)
        if still:
            reason = f"rollups incomplete for workspace(s) {still}: partition kept"
            logger.error("ledger retention: %s %s", table, reason)
            return Refused(table, reason)
        totals = _ledger_totals(cursor, table)
        expected = (
            sum(n for n, _c in totals.values()),
            sum((c for _n, c in totals.values()), Decimal(0)),
        )
        _write_archive(cursor, table, path)
        written = archive_totals(path)
        if written != expected:
            raise ArchiveMismatch(f"{path}: {written} in the file, {expected} in {table}")
        _record_archive(cursor, month=month, table=table, path=path)
        cursor.execute(f"SET LOCAL lock_timeout = '{DETACH_LOCK_TIMEOUT}'")
        cursor.execute(f'ALTER TABLE "{PARENT}" DETACH PARTITION "{table}"')
        cursor.execute(f'DROP TABLE "{table}"')
    logger.info(
        "ledger retention: %s archived to %s (%d rows) and dropped", table, path, written[0]
    )
    return Archived(table, path, written[0], written[1])


def ledger_retention_run(
    *, now: dt.datetime, months: int | None = None, directory: Path | None = None
) -> RetentionResult:
    """Archive and drop every month partition older than the retention; a no-op when off."""
    result = RetentionResult()
    cutoff = retention_cutoff(now=now, months=months)
    if cutoff is None:
        return result
    with owner_cursor() as cursor:
        expired = [(m, name) for m, name in month_partitions(cursor) if m < cutoff]
    for month, table in expired:
        outcome = ledger_partition_archive(
            month=month, table=table, directory=directory or archive_dir()
        )
        if isinstance(outcome, Archived):
            result.archived.append(outcome)
        else:
            result.refused.append(outcome)
    return result
