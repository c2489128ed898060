"""Budget periods in the workspace's time zone: the ONE implementation.

The gateway (counter keys, reset times) and the Django side (ledger totals, dashboards, alerts)
both call `period_bounds`, so they agree on every boundary, DST changes included.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Bounds = tuple[str, datetime | None, datetime | None]


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except Exception:  # an unknown zone must not take the gateway down
        return ZoneInfo("UTC")


def period_bounds(period: str, time_zone: str, now: float) -> Bounds:
    """(period key, start, end) of the period holding `now` in the workspace's time zone."""
    if period == "lifetime":
        return "life", None, None
    tz = _zone(time_zone)
    local = datetime.fromtimestamp(now, tz)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
        key = f"d{start:%Y%m%d}"
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
        iso = start.isocalendar()
        key = f"w{iso.year}{iso.week:02d}"
    elif period == "month":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        key = f"m{start:%Y%m}"
    else:
        raise ValueError(f"unknown period {period!r}")
    # Wall-clock arithmetic across a DST change: re-resolve the local midnight in the zone.
    start = start.replace(tzinfo=None).replace(tzinfo=tz)
    end = end.replace(tzinfo=None).replace(tzinfo=tz)
    return key, start, end


class PeriodCache:
    """Period bounds per (period, time zone), valid until the period ends: the request path
    asks for them on every call, the answer changes once a day at most."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[float, float, Bounds]] = {}

    def get(self, period: str, time_zone: str, now: float) -> Bounds:
        hit = self._cache.get((period, time_zone))
        if hit is not None and hit[0] <= now < hit[1]:
            return hit[2]
        bounds = period_bounds(period, time_zone, now)
        start = bounds[1].timestamp() if bounds[1] is not None else -math.inf
        end = bounds[2].timestamp() if bounds[2] is not None else math.inf
        if len(self._cache) > 512:
            self._cache.clear()
        self._cache[(period, time_zone)] = (start, end, bounds)
        return bounds
