"""SQL shared by the rollup rebuild (`rollups.py`) and the additions to archived windows
(`archived.py`): which buckets and dimensions a ledger row counts in, and the aggregate insert.
"""

from __future__ import annotations

from attribution.models import Granularity, UsageRollup
from billing.models import UsageRecord

ROLLUP_COLUMNS = """workspace_id, granularity, bucket_start, dimension, key, requests,
            input_tokens, output_tokens, cached_tokens, cost_usd, saved_usd, errors,
            cache_hits, first_at, last_at"""
# On a bucket that already holds rows (an archived window): add, never replace.
ADD_ON_CONFLICT = """
        ON CONFLICT (workspace_id, granularity, dimension, key, bucket_start) DO UPDATE SET
            requests = r.requests + EXCLUDED.requests,
            input_tokens = r.input_tokens + EXCLUDED.input_tokens,
            output_tokens = r.output_tokens + EXCLUDED.output_tokens,
            cached_tokens = r.cached_tokens + EXCLUDED.cached_tokens,
            cost_usd = r.cost_usd + EXCLUDED.cost_usd,
            saved_usd = r.saved_usd + EXCLUDED.saved_usd,
            errors = r.errors + EXCLUDED.errors,
            cache_hits = r.cache_hits + EXCLUDED.cache_hits,
            first_at = least(r.first_at, EXCLUDED.first_at),
            last_at = greatest(r.last_at, EXCLUDED.last_at)
"""


def ledger_table() -> str:
    return UsageRecord._meta.db_table


def rollup_table() -> str:
    return UsageRollup._meta.db_table


def _ledger_columns() -> set[str]:
    return {f.column for f in UsageRecord._meta.concrete_fields if f.column}


def bucket_sql(granularity: str) -> str:
    # Hours are UTC hours; days are the workspace's local days (3-argument date_trunc).
    if granularity == Granularity.HOUR:
        return "date_trunc('hour', u.created_at, 'UTC')"
    return "date_trunc('day', u.created_at, %(tz)s)"


def dimensions_sql() -> str:
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


def insert_from_ledger_sql(granularity: str, where: str, *, add: bool = False) -> str:
    """INSERT the aggregates of the ledger rows matching `where` (besides the workspace, and a
    bucket in %(buckets)s) into their buckets; `add` adds them to existing rows instead of
    expecting the buckets to be empty."""
    return f"""
        INSERT INTO {rollup_table()} AS r ({ROLLUP_COLUMNS})
        SELECT %(ws)s, %(gran)s, b.bucket, d.dim, d.key, count(*),
               coalesce(sum(u.input_tokens), 0), coalesce(sum(u.output_tokens), 0),
               coalesce(sum(u.cached_tokens), 0), coalesce(sum(u.cost_usd), 0),
               coalesce(sum(u.saved_usd), 0),
               count(*) FILTER (WHERE u.status_code >= 400 OR u.error_type <> ''),
               count(*) FILTER (WHERE u.cache_hit),
               min(u.created_at), max(u.created_at)
        FROM {ledger_table()} u
        CROSS JOIN LATERAL (SELECT {bucket_sql(granularity)} AS bucket) b
        CROSS JOIN LATERAL ({dimensions_sql()}) d
        WHERE u.workspace_id = %(ws)s AND {where}
          AND b.bucket = ANY(%(buckets)s)
        GROUP BY b.bucket, d.dim, d.key
        {ADD_ON_CONFLICT if add else ""}
    """
