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

from django.db.models import Count, F, Q, Sum

from attribution.models import Granularity, SessionRollup, UsageRollup
from attribution.periods import Period
from billing.models import UsageRecord
from gateway.models import GatewayKey
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
    total: Decimal | None = None,
) -> list[Row]:
    """Keys of `dimension` by spend in the period, most expensive first, with sparklines."""
    qs = _rollups(workspace=workspace, period=period, dimension=dimension)
    grouped = list(qs.values("key").annotate(**_SUMS).order_by("-cost", "key"))
    if limit is not None:
        grouped = grouped[:limit]
    keys = [g["key"] for g in grouped]
    labels = labels_for(workspace=workspace, dimension=dimension, keys=keys)
    if total is None:
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
    return UsageRecord.objects.filter(
        ledger_filter(dimension, key),
        workspace=workspace,
        created_at__gte=period.start_at,
        created_at__lt=period.end_at,
    )


# (drill-down dimension, breakdown) -> the day-bucket rollup that answers it
CROSS_DIMENSIONS = {
    ("member", "model"): "member:model",
    ("agent", "model"): "agent:model",
    ("department", "model"): "dept:model",
    ("gateway_key", "model"): "key:model",
    ("model", "member"): "model:member",
}


def _breakdown_from_rollups(
    *, workspace: Workspace, period: Period, cross: str, key: str, by: str
) -> list[Row]:
    # Keys are "<drilled key>|<breakdown key>" ("provider/model|<member id>" for models).
    prefix = f"{key}|"
    qs = _rollups(workspace=workspace, period=period, dimension=cross)
    qs = qs.filter(key__startswith=prefix)
    grouped = list(qs.values("key").annotate(**_SUMS).order_by("-cost", "key")[:50])
    keys = [g["key"][len(prefix) :] for g in grouped]
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


def breakdown(
    *, workspace: Workspace, period: Period, dimension: str, key: str, by: str
) -> list[Row]:
    """Spend of one entity split by another dimension (model, member, agent), from the ledger."""
    cross = CROSS_DIMENSIONS.get((dimension, by))
    if cross is not None:
        return _breakdown_from_rollups(
            workspace=workspace, period=period, cross=cross, key=key, by=by
        )
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
    "cost": ["-cost_usd", "session_id"],
    "steps": ["-requests", "session_id"],
    "duration": ["-duration", "session_id"],
    "recent": ["-last_at", "session_id"],
}


def sessions(
    *,
    workspace: Workspace,
    period: Period,
    sort: str = "cost",
    limit: int = 50,
    offset: int = 0,
) -> list[Row]:
    """Agent runs (calls sharing an `Alephant-Session-Id`) active in the period, whole-run
    totals, with their loop evidence (precomputed by the rollup)."""
    qs = (
        SessionRollup.objects.filter(
            workspace=workspace, first_at__lt=period.end_at, last_at__gte=period.start_at
        )
        .annotate(duration=F("last_at") - F("first_at"))
        .order_by(*SESSION_SORTS.get(sort, SESSION_SORTS["cost"]))[offset : offset + limit]
    )
    runs = list(qs)
    agents = labels_for(
        workspace=workspace, dimension="agent", keys=[str(r.agent_id) for r in runs if r.agent_id]
    )
    members = labels_for(
        workspace=workspace,
        dimension="member",
        keys=[str(r.member_id) for r in runs if r.member_id],
    )
    rows = []
    for run in runs:
        totals = Totals(
            run.requests,
            run.input_tokens,
            run.output_tokens,
            run.cached_tokens,
            run.cost_usd,
            run.saved_usd,
            run.errors,
            run.cache_hits,
        )
        rows.append(
            Row(
                "session",
                run.session_id,
                run.session_name or run.session_id,
                totals,
                extra={
                    "first_at": run.first_at,
                    "last_at": run.last_at,
                    "duration": run.duration,
                    "max_repeats": run.max_repeats,
                    "loop_blocks": run.loop_blocks,
                    "looping": run.max_repeats >= LOOP_REPEATS or run.loop_blocks > 0,
                    "agent_id": run.agent_id,
                    "agent": agents.get(str(run.agent_id), "") if run.agent_id else "",
                    "member": members.get(str(run.member_id), "") if run.member_id else "",
                },
            )
        )
    return rows
