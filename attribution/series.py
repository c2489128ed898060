"""Reads for comparisons and charts beyond the basic spend series: period-to-date totals,
spend per model over time (stacked), error rate and latency over time.

Rollups answer everything but latency, which only the ledger holds (bounded to the period
through its (workspace, created_at) index).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

from django.db.models import Avg, Count, Q
from django.db.models.functions import TruncDay, TruncHour

from attribution.models import Granularity, UsageRollup
from attribution.periods import Period
from attribution.selectors import _SUMS, Totals, _totals, buckets, ledger_filter
from billing.models import UsageRecord
from workspaces.models import Workspace

ZERO = Decimal(0)
STACK_MODELS = 6  # the most expensive models get a band each, the rest one "other" band


def previous_to_date(period: Period, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The previous period from its start to the same point `now` is into this one (the
    whole previous period once this one is over): 31 minutes against 31 minutes."""
    prev = period.previous()
    if not period.start_at <= now < period.end_at:
        return prev.start_at, prev.end_at
    return prev.start_at, min(prev.start_at + (now - period.start_at), prev.end_at)


def totals_between(
    *,
    workspace: Workspace,
    start: dt.datetime,
    end: dt.datetime,
    dimension: str = "workspace",
    key: str = "",
) -> Totals:
    """Totals of hourly rollups whose hour starts in [start, end) (an hour's resolution)."""
    qs = UsageRollup.objects.filter(
        workspace=workspace,
        granularity=Granularity.HOUR,
        dimension=dimension,
        key=key,
        bucket_start__gte=start,
        bucket_start__lt=end,
    )
    return _totals(qs.aggregate(**_SUMS))


def model_stack(
    *, workspace: Workspace, period: Period
) -> tuple[list[dt.datetime], list[tuple[str, list[Decimal]]]]:
    """(buckets, [(model, cost per bucket)]) for the top models, the rest summed as other."""
    granularity = Granularity.HOUR if period.hourly else Granularity.DAY
    qs = UsageRollup.objects.filter(
        workspace=workspace,
        granularity=granularity,
        dimension="model",
        bucket_start__gte=period.start_at,
        bucket_start__lt=period.end_at,
    )
    per: dict[str, dict[dt.datetime, Decimal]] = defaultdict(dict)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for key, bucket, cost in qs.values_list("key", "bucket_start", "cost_usd"):
        per[key][bucket] = per[key].get(bucket, ZERO) + cost
        totals[key] += cost
    ranked = sorted(totals, key=lambda k: (-totals[k], k))
    all_buckets = buckets(period)
    bands = [(k, [per[k].get(b, ZERO) for b in all_buckets]) for k in ranked[:STACK_MODELS]]
    rest = ranked[STACK_MODELS:]
    if rest:
        other = [sum((per[k].get(b, ZERO) for k in rest), ZERO) for b in all_buckets]
        bands.append((f"other ({len(rest)} models)", other))
    return all_buckets, bands


def health_series(
    *, workspace: Workspace, period: Period, dimension: str = "workspace", key: str = ""
) -> list[tuple[dt.datetime, int, int, int | None]]:
    """(bucket, requests, errors, mean latency ms) per bucket, from the ledger."""
    trunc = TruncHour if period.hourly else TruncDay
    qs = (
        UsageRecord.objects.filter(
            ledger_filter(dimension, key),
            workspace=workspace,
            created_at__gte=period.start_at,
            created_at__lt=period.end_at,
        )
        .annotate(bucket=trunc("created_at", tzinfo=period.tz))
        .order_by()
        .values("bucket")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=Q(status_code__gte=400) | ~Q(error_type="")),
            latency=Avg("latency_ms"),
        )
    )
    got = {row["bucket"]: row for row in qs}
    out: list[tuple[dt.datetime, int, int, int | None]] = []
    for b in buckets(period):
        row = got.get(b)
        if row is None:
            out.append((b, 0, 0, None))
        else:
            latency = int(row["latency"]) if row["latency"] is not None else None
            out.append((b, row["requests"], row["errors"], latency))
    return out
