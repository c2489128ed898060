"""Session summaries (`SessionRollup`): one row per agent run, whole-run totals.

A summary is normally recomputed from the ledger whenever new rows (or the recent windows)
touch its session. A run that started in a month since archived by retention is "frozen": its
archived rows are no longer in the ledger, so its summary is never recomputed; each ledger row
of it that arrived after the archive is added once instead (`RollupFold`, target `session`; see
`archived.py`). `max_repeats` of a frozen run is the larger of its stored value and the count
over its remaining rows (one repeated request on both sides of the archive reads low).
"""

from __future__ import annotations

from typing import Any

from django.db import connection

from attribution.models import FoldTarget, RollupFold, SessionRollup
from attribution.services.archived import RANGES_SQL, Archive, range_params
from attribution.services.rollup_sql import ledger_table
from workspaces.models import Workspace

_SUMS = """count(*) AS requests, sum(u.input_tokens) AS input_tokens,
       sum(u.output_tokens) AS output_tokens, sum(u.cached_tokens) AS cached_tokens,
       sum(u.cost_usd) AS cost_usd, sum(u.saved_usd) AS saved_usd,
       count(*) FILTER (WHERE u.status_code >= 400 OR u.error_type <> '') AS errors,
       count(*) FILTER (WHERE u.cache_hit) AS cache_hits,
       count(*) FILTER (WHERE u.error_type = 'loop_detected') AS loop_blocks,
       max(u.session_name) AS session_name, min(u.agent_id) AS agent_id,
       min(u.member_id) AS member_id, min(u.created_at) AS first_at,
       max(u.created_at) AS last_at"""


def _repeats_sql(ledger: str) -> str:
    """session_id -> most rows sharing one request fingerprint (over the ledger's rows)."""
    return f"""
        SELECT session_id, max(n) AS max_repeats FROM (
            SELECT session_id, fingerprint, count(*) AS n FROM {ledger}
            WHERE workspace_id = %(ws)s AND session_id = ANY(%(ids)s) AND fingerprint <> ''
            GROUP BY 1, 2) f
        GROUP BY 1"""


def rebuild_sessions(*, workspace: Workspace, session_ids: list[str]) -> None:
    """Recompute the whole-run summaries of these sessions from the ledger."""
    ledger, table = ledger_table(), SessionRollup._meta.db_table
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
                SELECT %(ws)s, a.session_id, a.session_name, a.agent_id, a.member_id,
                       a.first_at, a.last_at, a.requests, a.input_tokens, a.output_tokens,
                       a.cached_tokens, a.cost_usd, a.saved_usd, a.errors, a.cache_hits,
                       coalesce(r.max_repeats, 0), a.loop_blocks
                FROM (SELECT u.session_id, {_SUMS} FROM {ledger} u
                      WHERE u.workspace_id = %(ws)s AND u.session_id = ANY(%(ids)s)
                      GROUP BY u.session_id) a
                LEFT JOIN ({_repeats_sql(ledger)}) r USING (session_id)
                """,
                params,
            )


def sessions_where(workspace: Workspace, where: str, params: dict[str, Any]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT session_id FROM {ledger_table()} "
            f"WHERE workspace_id = %(ws)s AND session_id <> '' AND {where}",
            {"ws": workspace.pk, **params},
        )
        return [r[0] for r in cursor.fetchall()]


def _frozen(workspace: Workspace, session_ids: list[str], params: dict[str, Any]) -> list[str]:
    """The sessions among these whose summary starts in an archived month."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.session_id FROM {SessionRollup._meta.db_table} s "
            "WHERE s.workspace_id = %(ws)s AND s.session_id = ANY(%(ids)s) "
            f"AND EXISTS (SELECT 1 FROM {RANGES_SQL} AS a(lo, hi, after_id) "
            "WHERE s.first_at >= a.lo AND s.first_at < a.hi)",
            {**params, "ids": session_ids},
        )
        return [r[0] for r in cursor.fetchall()]


def _claim_session_rows(session_ids: list[str], params: dict[str, Any]) -> list[int]:
    """Mark folded the rows of these frozen sessions that arrived after the archive of the
    month their run started in and are not folded yet; returns their ids."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {RollupFold._meta.db_table} (workspace_id, record_id, target, folded_at)
            SELECT %(ws)s, u.id, %(target)s, now()
            FROM {SessionRollup._meta.db_table} s
            JOIN {ledger_table()} u
              ON u.workspace_id = s.workspace_id AND u.session_id = s.session_id
            WHERE s.workspace_id = %(ws)s AND s.session_id = ANY(%(ids)s)
              AND u.id > (SELECT max(a.after_id) FROM {RANGES_SQL} AS a(lo, hi, after_id)
                          WHERE s.first_at >= a.lo AND s.first_at < a.hi)
            ON CONFLICT (workspace_id, record_id, target) DO NOTHING
            RETURNING record_id
            """,
            {**params, "ids": session_ids, "target": FoldTarget.SESSION},
        )
        return [int(r[0]) for r in cursor.fetchall()]


def _add_to_sessions(workspace: Workspace, ids: list[int]) -> None:
    ledger = ledger_table()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {SessionRollup._meta.db_table} s SET
                requests = s.requests + a.requests,
                input_tokens = s.input_tokens + a.input_tokens,
                output_tokens = s.output_tokens + a.output_tokens,
                cached_tokens = s.cached_tokens + a.cached_tokens,
                cost_usd = s.cost_usd + a.cost_usd, saved_usd = s.saved_usd + a.saved_usd,
                errors = s.errors + a.errors, cache_hits = s.cache_hits + a.cache_hits,
                loop_blocks = s.loop_blocks + a.loop_blocks,
                session_name = greatest(s.session_name, a.session_name),
                agent_id = least(s.agent_id, a.agent_id),
                member_id = least(s.member_id, a.member_id),
                first_at = least(s.first_at, a.first_at),
                last_at = greatest(s.last_at, a.last_at),
                max_repeats = greatest(s.max_repeats, coalesce(r.max_repeats, 0))
            FROM (SELECT u.session_id, {_SUMS} FROM {ledger} u
                  WHERE u.workspace_id = %(ws)s AND u.id = ANY(%(rows)s)
                  GROUP BY u.session_id) a
            LEFT JOIN ({_repeats_sql(ledger)}) r USING (session_id)
            WHERE s.workspace_id = %(ws)s AND s.session_id = a.session_id
            """,
            {"ws": workspace.pk, "rows": ids, "ids": _sessions_of(workspace, ids)},
        )


def _sessions_of(workspace: Workspace, ids: list[int]) -> list[str]:
    return sessions_where(workspace, "id = ANY(%(rows)s)", {"rows": ids})


def summarise_sessions(*, workspace: Workspace, session_ids: list[str], archive: Archive) -> None:
    """Bring these sessions' summaries up to date: recompute, or add to the frozen ones."""
    if not archive:
        rebuild_sessions(workspace=workspace, session_ids=session_ids)
        return
    params = {"ws": workspace.pk, **range_params(list(archive.months))}
    frozen = set(_frozen(workspace, session_ids, params))
    rest = [s for s in session_ids if s not in frozen]
    rebuild_sessions(workspace=workspace, session_ids=rest)
    # A run recomputed just now that starts in an archived month (a late row opened it there)
    # is frozen from now on: its rows counted so far are marked, so none is added again.
    _claim_session_rows(_frozen(workspace, rest, params), params)
    added = _claim_session_rows(sorted(frozen), params)
    if added:
        _add_to_sessions(workspace, added)


def unfrozen(*, workspace: Workspace, session_ids: list[str], archive: Archive) -> list[str]:
    """The sessions among these that may be recomputed from the ledger."""
    if not archive:
        return session_ids
    params = {"ws": workspace.pk, **range_params(list(archive.months))}
    frozen = set(_frozen(workspace, session_ids, params))
    return [s for s in session_ids if s not in frozen]
