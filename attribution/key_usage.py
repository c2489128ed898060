"""Per gateway key: when it was last used and what it spent this month, for the keys page.

From the day rollups (one row per key and day), not the ledger: the keys page stays one
indexed aggregate however many calls the keys made. `last_at` is the newest call folded in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Max, Q, Sum

from attribution.models import Granularity, UsageRollup
from core.periods import calendar_period
from workspaces.models import Workspace


@dataclass(frozen=True)
class KeyUsage:
    last_used_at: dt.datetime | None
    month_spend: Decimal
    requests: int


def key_usage(*, workspace: Workspace, now: dt.datetime) -> dict[int, KeyUsage]:
    local = now.astimezone(workspace.tz)
    first, _ = calendar_period("month", local.date())
    month_start = dt.datetime.combine(first, dt.time(), tzinfo=workspace.tz)
    in_month = Q(bucket_start__gte=month_start)
    rows = (
        UsageRollup.objects.filter(
            workspace=workspace, granularity=Granularity.DAY, dimension="gateway_key"
        )
        .exclude(key="")
        .values("key")
        .annotate(
            last=Max("last_at"),
            spend=Sum("cost_usd", filter=in_month),
            requests=Sum("requests", filter=in_month),
        )
    )
    return {
        int(r["key"]): KeyUsage(r["last"], r["spend"] or Decimal(0), r["requests"] or 0)
        for r in rows
        if r["key"].isdigit()
    }
