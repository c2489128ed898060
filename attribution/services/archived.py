"""Rollups of archived ledger months: added to, never rebuilt.

Retention (`billing.services.ledger_retention`) writes an expired month to its archive file,
drops its partition and records a `LedgerArchive` row, in one transaction. From then on the
month's rows exist only in the file and in the rollups built from them, so a rollup holding
archived rows is never again rebuilt from the ledger (that would keep only what is left). Those
are:

* the hour buckets inside an archived month;
* the local-day buckets overlapping one that are not made of whole UTC hours (UTC+5:30, say;
  a day made of whole hours is the sum of its hours and is rebuilt from them as usual);
* the session summaries of runs that started in an archived month ("frozen" sessions, in
  `sessions.py`).

A ledger row arriving later for such a window (a late row for an archived month lands in the
default partition) is **added** to it, exactly once: its id is written to `RollupFold`
(unique per row and target) in the transaction that adds it, so a rerun adds nothing and a row
committed out of id order is still found on a later run. Rows already in the ledger when the
month was archived (`id <= LedgerArchive.last_record_id`) had been counted by the ordinary
rebuild. Every such figure is therefore the archive file's rows of that window plus the ledger
rows listed in `attribution_rollupfold` for it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection

from attribution.models import FoldTarget, Granularity, RollupFold
from attribution.services.rollup_sql import insert_from_ledger_sql, ledger_table
from billing.models import LedgerArchive
from workspaces.models import Workspace

Range = tuple[dt.datetime, dt.datetime, int]  # [lo, hi) and the id a row must exceed


def _next_month(month: dt.datetime) -> dt.datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def _local_day(moment: dt.datetime, tz: Any) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the local day holding `moment`, as UTC instants."""
    local = moment.astimezone(tz).date()
    start = dt.datetime.combine(local, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(local + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def whole_hours(start: dt.datetime, end: dt.datetime) -> bool:
    return not (start.minute or start.second or end.minute or end.second)


@dataclass(frozen=True)
class Archive:
    """The archived months: (start, end, ledger max id when archived), oldest first."""

    months: tuple[Range, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.months)

    def holds(self, start: dt.datetime, end: dt.datetime) -> bool:
        """Whether [start, end) overlaps an archived month."""
        return any(lo < end and start < hi for lo, hi, _last in self.months)

    def rebuildable_hours(self, hours: set[dt.datetime]) -> set[dt.datetime]:
        return {h for h in hours if not self.holds(h, h + dt.timedelta(hours=1))}

    def rebuildable_days(self, workspace: Workspace, days: set[dt.datetime]) -> set[dt.datetime]:
        tz, keep = workspace.tz, set()
        for day in days:
            start, end = _local_day(day, tz)
            if whole_hours(start, end) or not self.holds(start, end):
                keep.add(day)
        return keep

    def ranges(self, workspace: Workspace) -> list[Range]:
        """Where a ledger row not yet folded must be added rather than rebuilt: every row of an
        archived month, and the rows after the archive in the part outside it of a local day
        that straddles its edge (when that day is not whole UTC hours)."""
        found: list[Range] = [(lo, hi, 0) for lo, hi, _last in self.months]
        for lo, hi, last in self.months:
            for edge in (lo, hi):
                start, end = _local_day(edge, workspace.tz)
                if whole_hours(start, end):
                    continue
                outside = (start, edge) if edge == lo else (edge, end)
                if outside[0] < outside[1] and not self.holds(*outside):
                    found.append((outside[0], outside[1], last))
        return found


def load_archive() -> Archive:
    rows = LedgerArchive.objects.order_by("month").values_list("month", "last_record_id")
    return Archive(tuple((m, _next_month(m.astimezone(dt.UTC)), last) for m, last in rows))


def range_params(ranges: list[Range]) -> dict[str, Any]:
    return {
        "r_lo": [r[0] for r in ranges],
        "r_hi": [r[1] for r in ranges],
        "r_after": [r[2] for r in ranges],
    }


RANGES_SQL = "unnest(%(r_lo)s::timestamptz[], %(r_hi)s::timestamptz[], %(r_after)s::bigint[])"


def _claim_rows(workspace: Workspace, ranges: list[Range]) -> list[int]:
    """Ids of the ledger rows in `ranges` not yet folded into buckets, now marked folded."""
    params: dict[str, Any] = {
        "ws": workspace.pk,
        "target": FoldTarget.BUCKET,
        "min": min(r[0] for r in ranges),
        "max": max(r[1] for r in ranges),
        **range_params(ranges),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {RollupFold._meta.db_table} (workspace_id, record_id, target, folded_at)
            SELECT %(ws)s, u.id, %(target)s, now() FROM {ledger_table()} u
            WHERE u.workspace_id = %(ws)s AND u.created_at >= %(min)s AND u.created_at < %(max)s
              AND NOT EXISTS (SELECT 1 FROM {RollupFold._meta.db_table} f
                              WHERE f.workspace_id = %(ws)s AND f.record_id = u.id
                                AND f.target = %(target)s)
              AND EXISTS (SELECT 1 FROM {RANGES_SQL} AS a(lo, hi, after_id)
                          WHERE u.created_at >= a.lo AND u.created_at < a.hi
                            AND u.id > a.after_id)
            ON CONFLICT (workspace_id, record_id, target) DO NOTHING
            RETURNING record_id
            """,
            params,
        )
        return [int(r[0]) for r in cursor.fetchall()]


def _windows_of(workspace: Workspace, ids: list[int]) -> tuple[set[dt.datetime], set[dt.datetime]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc('hour', created_at, 'UTC'), "
            f"date_trunc('day', created_at, %(tz)s) FROM {ledger_table()} "
            "WHERE workspace_id = %(ws)s AND id = ANY(%(ids)s)",
            {"ws": workspace.pk, "tz": workspace.time_zone, "ids": ids},
        )
        rows = cursor.fetchall()
    return {r[0] for r in rows}, {r[1] for r in rows}


def _add(workspace: Workspace, granularity: str, ids: list[int], buckets: set[dt.datetime]) -> None:
    if not buckets:
        return
    params: dict[str, Any] = {
        "ws": workspace.pk,
        "gran": granularity,
        "tz": workspace.time_zone,
        "ids": ids,
        "buckets": sorted(buckets),
    }
    with connection.cursor() as cursor:
        cursor.execute(insert_from_ledger_sql(granularity, "u.id = ANY(%(ids)s)", add=True), params)


@dataclass(frozen=True)
class Folded:
    ids: list[int]  # the ledger rows added this run
    hours: set[dt.datetime]  # their windows still to rebuild as usual (outside the archive)
    days: set[dt.datetime]


def fold_late_rows(*, workspace: Workspace, archive: Archive) -> Folded:
    """Add every not-yet-folded row of an archived window to its buckets (inside the rollup's
    transaction, after the workspace's `RollupState` lock)."""
    ranges = archive.ranges(workspace) if archive else []
    ids = _claim_rows(workspace, ranges) if ranges else []
    if not ids:
        return Folded([], set(), set())
    hours, days = _windows_of(workspace, ids)
    rebuild_hours, rebuild_days = (
        archive.rebuildable_hours(hours),
        archive.rebuildable_days(workspace, days),
    )
    _add(workspace, Granularity.HOUR, ids, hours - rebuild_hours)
    _add(workspace, Granularity.DAY, ids, days - rebuild_days)
    return Folded(ids, rebuild_hours, rebuild_days)
