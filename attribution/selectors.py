"""Reads for the spend dashboard: rollups for totals and series, the ledger for row detail.

Every function takes `workspace=` and runs inside that workspace's scope (RLS underneath).
Totals, series and top lists read `UsageRollup` (cheap at any ledger size); recent requests,
per-entity breakdowns and loop evidence read the ledger through its (workspace, x, created_at)
indexes, bounded to the period.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, F, Max, Min, Q, Sum

from attribution.models import Dimension, Granularity, UsageRollup
from attribution.periods import Period
from workspaces.models import Agent, Department, Member, Workspace

ZERO = Decimal(0)
LOOP_REPEATS = 5  # the same request fingerprint this often in one session = a looping run
ENTITY_DIMENSIONS = ("member", "agent", "department", "gateway_key")
UNATTRIBUTED = {
    "member": "(no member)",
    "agent": "(no agent)",
    "department": "(no department)",
    "gateway_key": "(no key)",
}


@dataclass
class Totals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: Decimal = ZERO
    saved: Decimal = ZERO
    errors: int = 0
    cache_hits: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Row:
    dimension: str
    key: str
    label: str
    totals: Totals
    share: Decimal = ZERO  # of the period total, 0..100
    spark: list[Decimal] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


_SUMS = {
    "requests": Sum("requests"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "cached_tokens": Sum("cached_tokens"),
    "cost": Sum("cost_usd"),
    "saved": Sum("saved_usd"),
    "errors": Sum("errors"),
    "cache_hits": Sum("cache_hits"),
}


def _totals(values: dict) -> Totals:
    return Totals(
        requests=values.get("requests") or 0,
        input_tokens=values.get("input_tokens") or 0,
        output_tokens=values.get("output_tokens") or 0,
        cached_tokens=values.get("cached_tokens") or 0,
        cost=values.get("cost") or ZERO,
        saved=values.get("saved") or ZERO,
        errors=values.get("errors") or 0,
        cache_hits=values.get("cache_hits") or 0,
    )


def _rollups(*, workspace: Workspace, period: Period, dimension: str, hourly: bool = False):
    granularity = Granularity.HOUR if hourly else Granularity.DAY
    return UsageRollup.objects.filter(
        workspace=workspace,
        granularity=granularity,
        dimension=dimension,
        bucket_start__gte=period.start_at,
        bucket_start__lt=period.end_at,
    )


def spend_totals(
    *, workspace: Workspace, period: Period, dimension: str = "workspace", key: str = ""
) -> Totals:
    qs = _rollups(workspace=workspace, period=period, dimension=dimension).filter(key=key)
    return _totals(qs.aggregate(**_SUMS))


def buckets(period: Period) -> list[dt.datetime]:
    """Bucket starts of the period's chart: hours for a day or two, local days otherwise."""
    if period.hourly:
        start = period.start_at.astimezone(dt.UTC)
        end = period.end_at.astimezone(dt.UTC)
        out, h = [], start
        while h < end:
            out.append(h)
            h += dt.timedelta(hours=1)
        return out
    return [
        dt.datetime.combine(period.start + dt.timedelta(days=i), dt.time(), tzinfo=period.tz)
        for i in range(period.days)
    ]


def spend_series(
    *, workspace: Workspace, period: Period, dimension: str = "workspace", key: str = ""
) -> list[tuple[dt.datetime, Decimal]]:
    qs = _rollups(workspace=workspace, period=period, dimension=dimension, hourly=period.hourly)
    got = dict(qs.filter(key=key).values_list("bucket_start", "cost_usd"))
    return [(b, got.get(b, ZERO)) for b in buckets(period)]


def labels_for(*, workspace: Workspace, dimension: str, keys: list[str]) -> dict[str, str]:
    ids = [int(k) for k in keys if k.isdigit()]
    labels: dict[str, str] = {}
    if dimension == "member":
        for m in Member.objects.filter(workspace=workspace, pk__in=ids).select_related("user"):
            labels[str(m.pk)] = m.user.name or m.user.email
    elif dimension == "agent":
        labels = {
            str(pk): slug
            for pk, slug in Agent.objects.filter(workspace=workspace, pk__in=ids).values_list(
                "pk", "slug"
            )
        }
    elif dimension == "department":
        labels = {
            str(pk): name
            for pk, name in Department.objects.filter(workspace=workspace, pk__in=ids).values_list(
                "pk", "name"
            )
        }
    elif dimension == "gateway_key":
        from gateway.models import GatewayKey

        for pk, name, prefix in GatewayKey.objects.filter(
            workspace=workspace, pk__in=ids
        ).values_list("pk", "name", "prefix"):
            labels[str(pk)] = f"{name} ({prefix})"
    for k in keys:
        if k not in labels:
            labels[k] = (
                UNATTRIBUTED.get(dimension, "(none)")
                if k == ""
                else (f"#{k} (deleted)" if dimension in ENTITY_DIMENSIONS else k)
            )
    return labels


def top_rows(
    *,
    workspace: Workspace,
    period: Period,
    dimension: str,
    limit: int | None = 10,
    with_spark: bool = True,
) -> list[Row]:
    """Keys of `dimension` by spend in the period, most expensive first, with sparklines."""
    qs = _rollups(workspace=workspace, period=period, dimension=dimension)
    grouped = list(qs.values("key").annotate(**_SUMS).order_by("-cost", "key"))
    if limit is not None:
        grouped = grouped[:limit]
    keys = [g["key"] for g in grouped]
    labels = labels_for(workspace=workspace, dimension=dimension, keys=keys)
    total = spend_totals(workspace=workspace, period=period).cost
    rows = [
        Row(
            dimension=dimension,
            key=g["key"],
            label=labels[g["key"]],
            totals=_totals(g),
            share=(g["cost"] * 100 / total).quantize(Decimal("0.1")) if total else ZERO,
        )
        for g in grouped
    ]
    if with_spark and rows:
        sq = _rollups(
            workspace=workspace, period=period, dimension=dimension, hourly=period.hourly
        ).filter(key__in=keys)
        series: dict[str, dict] = defaultdict(dict)
        for key, bucket, cost in sq.values_list("key", "bucket_start", "cost_usd"):
            series[key][bucket] = cost
        all_buckets = buckets(period)
        for row in rows:
            row.spark = [series[row.key].get(b, ZERO) for b in all_buckets]
    return rows


# --- the ledger ------------------------------------------------------------------------------


def ledger_filter(dimension: str, key: str) -> Q:
    if dimension == "workspace":
        return Q()
    if dimension in ENTITY_DIMENSIONS:
        column = f"{dimension}_id"
        return Q(**{f"{column}__isnull": True}) if key == "" else Q(**{column: int(key)})
    if dimension == "provider":
        return Q(provider=key)
    if dimension == "model":
        provider, _, model = key.partition("/")
        return Q(provider=provider, model=model)
    if dimension == "session":
        return Q(session_id=key)
    if dimension == "property":
        name, _, value = key.partition("=")
        return Q(**{f"properties__{name}": value})
    raise ValueError(f"unknown dimension {dimension!r}")


def _ledger(*, workspace: Workspace, period: Period, dimension: str, key: str):
    from billing.models import UsageRecord

    return UsageRecord.objects.filter(
        ledger_filter(dimension, key),
        workspace=workspace,
        created_at__gte=period.start_at,
        created_at__lt=period.end_at,
    )


def breakdown(
    *, workspace: Workspace, period: Period, dimension: str, key: str, by: str
) -> list[Row]:
    """Spend of one entity split by another dimension (model, member, agent), from the ledger."""
    qs = _ledger(workspace=workspace, period=period, dimension=dimension, key=key)
    if by == "model":
        group = ["provider", "model"]
    elif by in ENTITY_DIMENSIONS:
        group = [f"{by}_id"]
    else:
        raise ValueError(by)
    grouped = (
        qs.order_by()
        .values(*group)
        .annotate(
            requests=Count("id"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cached_tokens=Sum("cached_tokens"),
            cost=Sum("cost_usd"),
            saved=Sum("saved_usd"),
            errors=Count("id", filter=Q(status_code__gte=400) | ~Q(error_type="")),
            cache_hits=Count("id", filter=Q(cache_hit=True)),
        )
        .order_by("-cost")[:50]
    )
    grouped = list(grouped)
    if by == "model":
        keys = [f"{g['provider']}/{g['model']}" for g in grouped]
    else:
        keys = ["" if g[group[0]] is None else str(g[group[0]]) for g in grouped]
    labels = labels_for(workspace=workspace, dimension=by, keys=keys)
    total = sum((g["cost"] or ZERO for g in grouped), ZERO)
    return [
        Row(
            by,
            k,
            labels[k],
            _totals(g),
            share=((g["cost"] or ZERO) * 100 / total).quantize(Decimal("0.1")) if total else ZERO,
        )
        for k, g in zip(keys, grouped, strict=True)
    ]


def recent_requests(
    *, workspace: Workspace, period: Period, dimension: str, key: str, page: int, per_page: int = 50
) -> tuple[list, bool]:
    """One page of ledger rows, newest first, and whether there is a next page."""
    qs = _ledger(workspace=workspace, period=period, dimension=dimension, key=key).order_by(
        "-created_at", "-id"
    )
    offset = max(page - 1, 0) * per_page
    rows = list(qs[offset : offset + per_page + 1])
    return rows[:per_page], len(rows) > per_page


# --- sessions --------------------------------------------------------------------------------

SESSION_SORTS = {
    "cost": ["-cost", "key"],
    "steps": ["-requests", "key"],
    "duration": ["-duration", "key"],
    "recent": ["-last_at", "key"],
}


def sessions(
    *,
    workspace: Workspace,
    period: Period,
    sort: str = "cost",
    limit: int = 50,
    offset: int = 0,
) -> list[Row]:
    """Agent runs (calls sharing an `Alephant-Session-Id`), with loop evidence from the ledger."""
    qs = _rollups(workspace=workspace, period=period, dimension=Dimension.SESSION)
    grouped = list(
        qs.values("key")
        .annotate(**_SUMS, first_at=Min("first_at"), last_at=Max("last_at"))
        .annotate(duration=F("last_at") - F("first_at"))
        .order_by(*SESSION_SORTS.get(sort, SESSION_SORTS["cost"]))[offset : offset + limit]
    )
    keys = [g["key"] for g in grouped]
    evidence = _session_evidence(workspace=workspace, period=period, session_ids=keys)
    rows = []
    for g in grouped:
        ev = evidence.get(g["key"], {})
        rows.append(
            Row(
                "session",
                g["key"],
                ev.get("name") or g["key"],
                _totals(g),
                extra={
                    "first_at": g["first_at"],
                    "last_at": g["last_at"],
                    "duration": g["duration"],
                    "max_repeats": ev.get("max_repeats", 0),
                    "loop_blocks": ev.get("loop_blocks", 0),
                    "looping": ev.get("max_repeats", 0) >= LOOP_REPEATS
                    or ev.get("loop_blocks", 0) > 0,
                    "agent_id": ev.get("agent_id"),
                    "agent": ev.get("agent", ""),
                    "member": ev.get("member", ""),
                },
            )
        )
    return rows


def _session_evidence(
    *, workspace: Workspace, period: Period, session_ids: list[str]
) -> dict[str, dict]:
    if not session_ids:
        return {}
    from billing.models import UsageRecord

    table = UsageRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH s AS (
                SELECT session_id, fingerprint, agent_id, member_id, session_name, error_type
                FROM {table}
                WHERE workspace_id = %(ws)s AND session_id = ANY(%(ids)s)
                  AND created_at >= %(lo)s AND created_at < %(hi)s
            ), reps AS (
                SELECT session_id, max(n) AS max_repeats FROM (
                    SELECT session_id, fingerprint, count(*) AS n FROM s
                    WHERE fingerprint <> '' GROUP BY 1, 2) f
                GROUP BY 1
            )
            SELECT s.session_id, coalesce(r.max_repeats, 0),
                   count(*) FILTER (WHERE s.error_type = 'loop_detected'),
                   min(s.agent_id), min(s.member_id), max(s.session_name)
            FROM s LEFT JOIN reps r USING (session_id)
            GROUP BY s.session_id, r.max_repeats
            """,
            {"ws": workspace.pk, "ids": session_ids, "lo": period.start_at, "hi": period.end_at},
        )
        rows = cursor.fetchall()
    agents = labels_for(
        workspace=workspace, dimension="agent", keys=[str(r[3]) for r in rows if r[3]]
    )
    members = labels_for(
        workspace=workspace, dimension="member", keys=[str(r[4]) for r in rows if r[4]]
    )
    return {
        r[0]: {
            "max_repeats": r[1],
            "loop_blocks": r[2],
            "agent_id": r[3],
            "agent": agents.get(str(r[3]), "") if r[3] else "",
            "member": members.get(str(r[4]), "") if r[4] else "",
            "name": r[5] or "",
        }
        for r in rows
    }
