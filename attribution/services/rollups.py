"""Fold the usage ledger into hourly and daily rollups, incrementally and idempotently.

A run for one workspace (inside its scope):

1. locks the workspace's `RollupState` row (concurrent runs for one workspace serialize here);
2. finds the windows touched by ledger rows with `id > watermark`: their UTC hour and their
   local day. A late row (old `created_at`, new id) therefore reopens its old window;
3. adds the "dirty" recent windows (the last `RECENT_HOURS` hours and their local days): a
   ledger batch whose transaction took an id below the new watermark but committed after this
   run read `max(id)` would otherwise be skipped; the nightly `rollup_reconcile` re-checks
   the last two days for anything still older;
4. rebuilds each touched window from the ledger: delete its rollup rows, insert the fresh
   aggregates (one INSERT ... SELECT per granularity). A window is always rebuilt whole, never
   incremented, so re-running it yields the same numbers;
5. moves the watermark to the `max(id)` read in step 2.

Windows holding rows of a month archived by ledger retention are the exception: they can't be
rebuilt from the ledger (their rows are gone from it), so a late row for them is added to them,
once (`archived.py`); session summaries likewise (`sessions.py`).

Money stays exact: `SUM` over `numeric` columns, no float anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from attribution.models import Granularity, RollupState, UsageRollup
from attribution.services.archived import Archive, fold_late_rows, load_archive
from attribution.services.rollup_sql import insert_from_ledger_sql, ledger_table
from attribution.services.sessions import (
    rebuild_sessions,
    sessions_where,
    summarise_sessions,
    unfrozen,
)
from workspaces.models import Workspace

RECENT_HOURS = 2
HOUR = dt.timedelta(hours=1)


@dataclass(frozen=True)
class RollupResult:
    workspace_id: int
    new_rows: int
    hours: int
    days: int
    watermark: int


def _rebuild(*, workspace: Workspace, granularity: str, buckets: list[dt.datetime]) -> None:
    """Delete and recompute the rollup rows of `buckets` (bucket starts, aware datetimes)."""
    if granularity == Granularity.DAY:
        # A local day made of whole UTC hours is the sum of its (already rebuilt) hours: a few
        # hundred rollup rows instead of a day of ledger rows (and the only way to rebuild a
        # day whose hours hold archived rows).
        whole = [d for d in buckets if _days_align_with_hours(workspace, [d])]
        _rebuild_buckets(workspace, granularity, whole, from_hours=True)
        buckets = [d for d in buckets if d not in set(whole)]
    _rebuild_buckets(workspace, granularity, buckets, from_hours=False)


def _rebuild_buckets(
    workspace: Workspace, granularity: str, buckets: list[dt.datetime], *, from_hours: bool
) -> None:
    if not buckets:
        return
    span = HOUR if granularity == Granularity.HOUR else dt.timedelta(hours=26)
    params: dict[str, Any] = {
        "ws": workspace.pk,
        "gran": granularity,
        "tz": workspace.time_zone,
        "buckets": buckets,
        # A range on created_at lets the (workspace, created_at) index narrow the scan; the
        # exact bucket test below keeps only the windows being rebuilt.
        "lo": min(buckets) - dt.timedelta(hours=2),
        "hi": max(buckets) + span,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {UsageRollup._meta.db_table} WHERE workspace_id = %(ws)s "
            "AND granularity = %(gran)s AND bucket_start = ANY(%(buckets)s)",
            params,
        )
        if from_hours:
            _insert_days_from_hours(cursor, params)
        else:
            _insert_from_ledger(cursor, granularity, params)


def _insert_days_from_hours(cursor: Any, params: dict[str, Any]) -> None:
    cursor.execute(
        f"""
        INSERT INTO {UsageRollup._meta.db_table} (
            workspace_id, granularity, bucket_start, dimension, key, requests,
            input_tokens, output_tokens, cached_tokens, cost_usd, saved_usd, errors,
            cache_hits, first_at, last_at)
        SELECT %(ws)s, %(gran)s, date_trunc('day', r.bucket_start, %(tz)s),
               r.dimension, r.key, sum(r.requests), sum(r.input_tokens),
               sum(r.output_tokens), sum(r.cached_tokens), sum(r.cost_usd),
               sum(r.saved_usd), sum(r.errors), sum(r.cache_hits), min(r.first_at),
               max(r.last_at)
        FROM {UsageRollup._meta.db_table} r
        WHERE r.workspace_id = %(ws)s AND r.granularity = 'hour'
          AND r.bucket_start >= %(lo)s AND r.bucket_start < %(hi)s
          AND date_trunc('day', r.bucket_start, %(tz)s) = ANY(%(buckets)s)
        GROUP BY 3, r.dimension, r.key
        """,
        params,
    )


def _insert_from_ledger(cursor: Any, granularity: str, params: dict[str, Any]) -> None:
    where = "u.created_at >= %(lo)s AND u.created_at < %(hi)s"
    cursor.execute(insert_from_ledger_sql(granularity, where), params)


def _days_align_with_hours(workspace: Workspace, days: list[dt.datetime]) -> bool:
    """Whether each local day starts and ends on a whole UTC hour (not so in UTC+5:30)."""
    tz = workspace.tz
    for day in days:
        start = day.astimezone(tz)
        end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(), tzinfo=tz)
        if start.astimezone(dt.UTC).minute or end.astimezone(dt.UTC).minute:
            return False
    return True


def _touched_windows(
    *, workspace: Workspace, after_id: int, upto_id: int
) -> tuple[set[dt.datetime], set[dt.datetime]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT DISTINCT date_trunc('hour', created_at, 'UTC'),
                            date_trunc('day', created_at, %(tz)s)
            FROM {ledger_table()}
            WHERE workspace_id = %(ws)s AND id > %(lo)s AND id <= %(hi)s
            """,
            {"ws": workspace.pk, "tz": workspace.time_zone, "lo": after_id, "hi": upto_id},
        )
        rows = cursor.fetchall()
    return {r[0] for r in rows}, {r[1] for r in rows}


def local_day_start(moment: dt.datetime, tz) -> dt.datetime:
    local = moment.astimezone(tz)
    return dt.datetime.combine(local.date(), dt.time(), tzinfo=tz).astimezone(dt.UTC)


def _recent_windows(
    *, workspace: Workspace, now: dt.datetime
) -> tuple[set[dt.datetime], set[dt.datetime]]:
    top = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hours = {top - i * HOUR for i in range(RECENT_HOURS + 1)}
    tz = workspace.tz
    days = {local_day_start(h, tz) for h in hours} | {local_day_start(h + HOUR, tz) for h in hours}
    return hours, {d for d in days if d <= now}


def _rebuild_windows(
    workspace: Workspace, archive: Archive, hours: set[dt.datetime], days: set[dt.datetime]
) -> None:
    """Rebuild these windows from the ledger, except those holding archived rows."""
    if archive:
        hours, days = archive.rebuildable_hours(hours), archive.rebuildable_days(workspace, days)
    # Rebuild in chunks so one statement never carries a huge array.
    hour_list, day_list = sorted(hours), sorted(days)
    for i in range(0, len(hour_list), 24 * 7):
        _rebuild(workspace=workspace, granularity=Granularity.HOUR, buckets=hour_list[i : i + 168])
    for i in range(0, len(day_list), 31):
        _rebuild(workspace=workspace, granularity=Granularity.DAY, buckets=day_list[i : i + 31])


def rollup_workspace(*, workspace: Workspace, now: dt.datetime | None = None) -> RollupResult:
    """Fold new ledger rows of `workspace` into its rollups. Call inside its workspace scope."""
    now = now or timezone.now()
    state, _ = RollupState.objects.get_or_create(workspace=workspace)
    state = RollupState.objects.select_for_update().get(pk=state.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(max(id), 0) FROM {ledger_table()} WHERE workspace_id = %s",
            [workspace.pk],
        )
        upto = int(cursor.fetchone()[0])
    hours, days = _touched_windows(workspace=workspace, after_id=state.last_record_id, upto_id=upto)
    new_rows = len(hours)  # informative only; the exact count is not needed
    recent_hours, recent_days = _recent_windows(workspace=workspace, now=now)
    archive = load_archive()
    late = fold_late_rows(workspace=workspace, archive=archive)  # before days sum their hours
    hours |= recent_hours | late.hours
    days |= recent_days | late.days
    _rebuild_windows(workspace, archive, hours, days)
    sessions = sessions_where(
        workspace,
        "((id > %(lo)s AND id <= %(hi)s) OR created_at >= %(recent)s OR id = ANY(%(late)s))",
        {"lo": state.last_record_id, "hi": upto, "recent": min(recent_hours), "late": late.ids},
    )
    summarise_sessions(workspace=workspace, session_ids=sessions, archive=archive)
    state.last_record_id = max(upto, state.last_record_id)
    state.updated_at = now
    state.save(update_fields=["last_record_id", "updated_at"])
    return RollupResult(workspace.pk, new_rows, len(hours), len(days), state.last_record_id)


def rollup_rebuild_range(
    *, workspace: Workspace, start: dt.datetime, end: dt.datetime
) -> tuple[int, int]:
    """Rebuild every hour and local day overlapping [start, end). Returns (hours, days).

    Windows and sessions holding archived rows are left as they are (see `archived.py`)."""
    tz = workspace.tz
    first_hour = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hours = []
    h = first_hour
    while h < end:
        hours.append(h)
        h += HOUR
    days = sorted({local_day_start(h, tz) for h in hours} | {local_day_start(end, tz)})
    days = [d for d in days if d < end]
    archive = load_archive()
    _rebuild_windows(workspace, archive, set(hours), set(days))
    sessions = sessions_where(
        workspace,
        "created_at >= %(start)s AND created_at < %(end)s",
        {"start": start, "end": end},
    )
    rebuild_sessions(
        workspace=workspace,
        session_ids=unfrozen(workspace=workspace, session_ids=sessions, archive=archive),
    )
    return len(hours), len(days)
