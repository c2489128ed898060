"""Series for the health and cache charts and the per-entity trend charts.

Error rate and latency come from the ledger (`series.health_series`: latency is only there);
cache hits and savings from the rollups, which fold exactly the ledger's `cache_hit` and
`saved_usd` columns, so every figure traces to a sum of ledger rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from attribution.models import Granularity, UsageRollup
from attribution.periods import Period
from attribution.selectors import buckets, labels_for
from workspaces.models import Workspace

ZERO = Decimal(0)
TREND_LINES = 6  # the largest spenders get a line each; the rest are left to the table


@dataclass(frozen=True)
class CachePoint:
    bucket: dt.datetime
    requests: int
    hits: int
    saved: Decimal
    cost: Decimal

    @property
    def hit_rate(self) -> Decimal | None:
        return Decimal(self.hits) / Decimal(self.requests) if self.requests else None


def _rollups(*, workspace: Workspace, period: Period, dimension: str):
    granularity = Granularity.HOUR if period.hourly else Granularity.DAY
    return UsageRollup.objects.filter(
        workspace=workspace,
        granularity=granularity,
        dimension=dimension,
        bucket_start__gte=period.start_at,
        bucket_start__lt=period.end_at,
    )


def cache_series(
    *, workspace: Workspace, period: Period, dimension: str = "workspace", key: str = ""
) -> list[CachePoint]:
    """Per bucket: requests, cache hits, dollars saved by hits and dollars paid."""
    qs = (
        _rollups(workspace=workspace, period=period, dimension=dimension)
        .filter(key=key)
        .values("bucket_start")
        .annotate(r=Sum("requests"), h=Sum("cache_hits"), s=Sum("saved_usd"), c=Sum("cost_usd"))
    )
    got = {row["bucket_start"]: row for row in qs}
    out = []
    for b in buckets(period):
        row = got.get(b)
        if row is None:
            out.append(CachePoint(b, 0, 0, ZERO, ZERO))
        else:
            out.append(
                CachePoint(b, row["r"] or 0, row["h"] or 0, row["s"] or ZERO, row["c"] or ZERO)
            )
    return out


def entity_trends(
    *, workspace: Workspace, period: Period, dimension: str, limit: int = TREND_LINES
) -> tuple[list[dt.datetime], list[tuple[str, str, list[Decimal]]]]:
    """(buckets, [(key, label, cost per bucket)]) for the top `limit` keys of a dimension."""
    per: dict[str, dict[dt.datetime, Decimal]] = defaultdict(dict)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    qs = _rollups(workspace=workspace, period=period, dimension=dimension)
    for key, bucket, cost in qs.values_list("key", "bucket_start", "cost_usd"):
        per[key][bucket] = per[key].get(bucket, ZERO) + cost
        totals[key] += cost
    ranked = sorted(totals, key=lambda k: (-totals[k], k))[:limit]
    labels = labels_for(workspace=workspace, dimension=dimension, keys=[k for k in ranked if k])
    all_buckets = buckets(period)
    lines = [
        (k, labels.get(k, k) if k else "unattributed", [per[k].get(b, ZERO) for b in all_buckets])
        for k in ranked
    ]
    return all_buckets, lines
