"""The CSV tables of the spend pages (each page exports what it shows)."""

from __future__ import annotations

from attribution import selectors
from workspaces.tables import Table

SPEND_HEADERS = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "saved_usd",
    "errors",
    "cache_hits",
]


def _spend_values(t: selectors.Totals) -> list:
    return [
        t.requests,
        t.input_tokens,
        t.output_tokens,
        t.cached_tokens,
        t.cost,
        t.saved,
        t.errors,
        t.cache_hits,
    ]


def rows_table(name: str, rows: list[selectors.Row], *, key_header: str) -> Table:
    return Table(
        name,
        [key_header, "id", *SPEND_HEADERS, "share_pct"],
        [[r.label, r.key, *_spend_values(r.totals), r.share] for r in rows],
    )


def series_table(series: list) -> Table:
    return Table("spend-over-time", ["bucket_start", "cost_usd"], [list(p) for p in series])


def overview_budgets_table(burns: list) -> Table:
    return Table(
        "budgets",
        [
            "scope",
            "metric",
            "period",
            "used",
            "limit",
            "percent",
            "forecast",
            "forecast_percent",
            "state",
        ],
        [
            [
                b.scope_label,
                b.budget.metric,
                b.period_label,
                b.used,
                b.limit,
                b.percent,
                b.forecast,
                b.forecast_percent,
                b.state,
            ]
            for b in burns
        ],
    )


def budgets_table(burns: list) -> Table:
    return Table(
        "budgets",
        ["scope", "metric", "period", "used", "limit", "percent", "forecast", "state"],
        [
            [
                b.scope_label,
                b.budget.metric,
                b.period_label,
                b.used,
                b.limit,
                b.percent,
                b.forecast,
                b.state,
            ]
            for b in burns
        ],
    )


def sessions_table(rows: list) -> Table:
    return Table(
        "sessions",
        [
            "session_id",
            "name",
            "agent",
            "member",
            "steps",
            "cost_usd",
            "first_at",
            "last_at",
            "duration_s",
            "max_repeats",
            "looping",
        ],
        [
            [
                r.key,
                r.label,
                r.extra["agent"],
                r.extra["member"],
                r.totals.requests,
                r.totals.cost,
                r.extra["first_at"],
                r.extra["last_at"],
                int(r.extra["duration"].total_seconds()) if r.extra["duration"] else 0,
                r.extra["max_repeats"],
                r.extra["looping"],
            ]
            for r in rows
        ],
    )


def recent_requests_table(recent: list) -> Table:
    return Table(
        "recent-requests",
        [
            "created_at",
            "request_id",
            "member",
            "agent",
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "cost_usd",
            "status_code",
            "error_type",
            "session_id",
            "latency_ms",
        ],
        [
            [
                r.created_at,
                r.request_id,
                r.member_label,
                r.agent_label,
                r.provider,
                r.model,
                r.input_tokens,
                r.output_tokens,
                r.cached_tokens,
                r.cost_usd,
                r.status_code,
                r.error_type,
                r.session_id,
                r.latency_ms,
            ]
            for r in recent
        ],
    )
