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

Money stays exact: `SUM` over `numeric` columns, no float anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from attribution.models import Granularity, RollupState, SessionRollup, UsageRollup
from billing.models import UsageRecord
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


def _ledger_table() -> str:
    return UsageRecord._meta.db_table


def _ledger_columns() -> set[str]:
    return {f.column for f in UsageRecord._meta.concrete_fields if f.column}


def _bucket_sql(granularity: str) -> str:
    # Hours are UTC hours; days are the workspace's local days (3-argument date_trunc).
    if granularity == Granularity.HOUR:
        return "date_trunc('hour', u.created_at, 'UTC')"
    return "date_trunc('day', u.created_at, %(tz)s)"


def _dimensions_sql(granularity: str) -> str:
    """One (dimension, key) pair per rollup dimension a ledger row contributes to."""
    columns = _ledger_columns()
    key_col = "coalesce(u.gateway_key_id::text, '')" if "gateway_key_id" in columns else "''::text"
    model = "u.provider || '/' || u.model"
    # The drill-down breakdowns ("this member, by model"); hourly too, so that days can be
    # summed from hours.
    cross = f"""
        UNION ALL SELECT 'member:model', coalesce(u.member_id::text, '') || '|' || {model}
        UNION ALL SELECT 'agent:model', coalesce(u.agent_id::text, '') || '|' || {model}
        UNION ALL SELECT 'dept:model', coalesce(u.department_id::text, '') || '|' || {model}
        UNION ALL SELECT 'key:model', {key_col} || '|' || {model}
        UNION ALL SELECT 'model:member', {model} || '|' || coalesce(u.member_id::text, '')
        """
    return f"""
        SELECT 'workspace'::text AS dim, ''::text AS key
        UNION ALL SELECT 'member', coalesce(u.member_id::text, '')
        UNION ALL SELECT 'agent', coalesce(u.agent_id::text, '')
        UNION ALL SELECT 'department', coalesce(u.department_id::text, '')
        UNION ALL SELECT 'gateway_key', {key_col}
        UNION ALL SELECT 'provider', u.provider
        UNION ALL SELECT 'model', {model}
        UNION ALL SELECT 'session', left(u.session_id, 400) WHERE u.session_id <> ''
        UNION ALL SELECT 'property', left(p.key || '=' || p.value, 400)
            FROM jsonb_each_text(
                CASE WHEN jsonb_typeof(u.properties) = 'object' THEN u.properties
                     ELSE '{{}}'::jsonb END) AS p
        {cross}
    """


def _rebuild_sessions(*, workspace: Workspace, session_ids: list[str]) -> None:
    """Recompute the whole-run summaries of these sessions from the ledger."""
    ledger, table = _ledger_table(), SessionRollup._meta.db_table
    for i in range(0, len(session_ids), 1000):
        params: dict[str, Any] = {"ws": workspace.pk, "ids": session_ids[i : i + 1000]}
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE workspace_id = %(ws)s AND session_id = ANY(%(ids)s)",
                params,
            )
            cursor.execute(
                f"""
                INSERT INTO {table} (workspace_id, session_id, session_name, agent_id,
                    member_id, first_at, last_at, requests, input_tokens, output_tokens,
                    cached_tokens, cost_usd, saved_usd, errors, cache_hits, max_repeats,
                    loop_blocks)
                SELECT %(ws)s, u.session_id, max(u.session_name), min(u.agent_id),
                       min(u.member_id), min(u.created_at), max(u.created_at), count(*),
                       sum(u.input_tokens), sum(u.output_tokens), sum(u.cached_tokens),
                       sum(u.cost_usd), sum(u.saved_usd),
                       count(*) FILTER (WHERE u.status_code >= 400 OR u.error_type <> ''),
                       count(*) FILTER (WHERE u.cache_hit), coalesce(r.max_repeats, 0),
                       count(*) FILTER (WHERE u.error_type = 'loop_detected')
                FROM {ledger} u
                LEFT JOIN (
                    SELECT session_id, max(n) AS max_repeats FROM (
                        SELECT session_id, fingerprint, count(*) AS n FROM {ledger}
                        WHERE workspace_id = %(ws)s AND session_id = ANY(%(ids)s)
                          AND fingerprint <> ''
                        GROUP BY 1, 2) f
                    GROUP BY 1
                ) r USING (session_id)
                WHERE u.workspace_id = %(ws)s AND u.session_id = ANY(%(ids)s)
                GROUP BY u.session_id, r.max_repeats
                """,
                params,
            )


def _sessions_where(workspace: Workspace, where: str, params: dict[str, Any]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT session_id FROM {_ledger_table()} "
            f"WHERE workspace_id = %(ws)s AND session_id <> '' AND {where}",
            {"ws": workspace.pk, **params},
        )
        return [r[0] for r in cursor.fetchall()]


def _rebuild(*, workspace: Workspace, granularity: str, buckets: list[dt.datetime]) -> None:
    """Delete and recompute the rollup rows of `buckets` (bucket starts, aware datetimes)."""
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
        if granularity == Granularity.DAY and _days_align_with_hours(workspace, buckets):
            # A local day made of whole UTC hours is the sum of its (already rebuilt) hours:
            # a few hundred rollup rows instead of a day of ledger rows.
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
    cursor.execute(
        f"""
        INSERT INTO {UsageRollup._meta.db_table} (
            workspace_id, granularity, bucket_start, dimension, key, requests,
            input_tokens, output_tokens, cached_tokens, cost_usd, saved_usd, errors,
            cache_hits, first_at, last_at)
        SELECT %(ws)s, %(gran)s, b.bucket, d.dim, d.key, count(*),
               coalesce(sum(u.input_tokens), 0), coalesce(sum(u.output_tokens), 0),
               coalesce(sum(u.cached_tokens), 0), coalesce(sum(u.cost_usd), 0),
               coalesce(sum(u.saved_usd), 0),
               count(*) FILTER (WHERE u.status_code >= 400 OR u.error_type <> ''),
               count(*) FILTER (WHERE u.cache_hit),
               min(u.created_at), max(u.created_at)
        FROM {_ledger_table()} u
        CROSS JOIN LATERAL (SELECT {_bucket_sql(granularity)} AS bucket) b
        CROSS JOIN LATERAL ({_dimensions_sql(granularity)}) d
        WHERE u.workspace_id = %(ws)s
          AND u.created_at >= %(lo)s AND u.created_at < %(hi)s
          AND b.bucket = ANY(%(buckets)s)
        GROUP BY b.bucket, d.dim, d.key
        """,
        params,
    )


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
            FROM {_ledger_table()}
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


def rollup_workspace(*, workspace: Workspace, now: dt.datetime | None = None) -> RollupResult:
    """Fold new ledger rows of `workspace` into its rollups. Call inside its workspace scope."""
    now = now or timezone.now()
    state, _ = RollupState.objects.get_or_create(workspace=workspace)
    state = RollupState.objects.select_for_update().get(pk=state.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT coalesce(max(id), 0) FROM {_ledger_table()} WHERE workspace_id = %s",
            [workspace.pk],
        )
        upto = int(cursor.fetchone()[0])
    hours, days = _touched_windows(workspace=workspace, after_id=state.last_record_id, upto_id=upto)
    new_rows = len(hours)  # informative only; the exact count is not needed
    recent_hours, recent_days = _recent_windows(workspace=workspace, now=now)
    hours |= recent_hours
    days |= recent_days
    _rebuild(workspace=workspace, granularity=Granularity.HOUR, buckets=sorted(hours))
    _rebuild(workspace=workspace, granularity=Granularity.DAY, buckets=sorted(days))
    _rebuild_sessions(
        workspace=workspace,
        session_ids=_sessions_where(
            workspace,
            "((id > %(lo)s AND id <= %(hi)s) OR created_at >= %(recent)s)",
            {"lo": state.last_record_id, "hi": upto, "recent": min(recent_hours)},
        ),
    )
    state.last_record_id = max(upto, state.last_record_id)
    state.updated_at = now
    state.save(update_fields=["last_record_id", "updated_at"])
    return RollupResult(workspace.pk, new_rows, len(hours), len(days), state.last_record_id)


def rollup_rebuild_range(
    *, workspace: Workspace, start: dt.datetime, end: dt.datetime
) -> tuple[int, int]:
    """Rebuild every hour and local day overlapping [start, end). Returns (hours, days)."""
    tz = workspace.tz
    first_hour = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    hours = []
    h = first_hour
    while h < end:
        hours.append(h)
        h += HOUR
    days = sorted({local_day_start(h, tz) for h in hours} | {local_day_start(end, tz)})
    days = [d for d in days if d < end]
    # Rebuild in chunks so one statement never carries a huge array.
    for i in range(0, len(hours), 24 * 7):
        _rebuild(workspace=workspace, granularity=Granularity.HOUR, buckets=hours[i : i + 168])
    for i in range(0, len(days), 31):
        _rebuild(workspace=workspace, granularity=Granularity.DAY, buckets=days[i : i + 31])
    _rebuild_sessions(
        workspace=workspace,
        session_ids=_sessions_where(
            workspace,
            "created_at >= %(start)s AND created_at < %(end)s",
            {"start": start, "end": end},
        ),
    )
    return len(hours), len(days)
