"""Budget periods in the workspace's time zone: the ONE implementation.

The gateway (counter keys, reset times) and the Django side (ledger totals, dashboards, alerts)
both call `period_bounds`, so they agree on every boundary, DST changes included.
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

Bounds = tuple[str, datetime | None, datetime | None]


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except Exception:  # an unknown zone must not take the gateway down
        return ZoneInfo("UTC")


def calendar_period(period: str, day: date) -> tuple[date, date]:
    """(first day, day after the last) of the day, week (Monday first) or month holding `day`."""
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if period == "month":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def period_key(period: str, start: date) -> str:
    """The counter suffix of a period: d20261201, w202649 (ISO week), m202612, life."""
    if period == "day":
        return f"d{start:%Y%m%d}"
    if period == "week":
        iso = start.isocalendar()
        return f"w{iso.year}{iso.week:02d}"
    return f"m{start:%Y%m}"


def period_bounds(period: str, time_zone: str, now: float) -> Bounds:
    """(period key, start, end) of the period holding `now` in the workspace's time zone."""
    if period == "lifetime":
        return "life", None, None
    tz = _zone(time_zone)
    first, after = calendar_period(period, datetime.fromtimestamp(now, tz).date())
    # Local midnights resolved in the zone, so a DST change inside the period is honoured.
    start = datetime.combine(first, time(), tzinfo=tz)
    end = datetime.combine(after, time(), tzinfo=tz)
    return period_key(period, first), start, end


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
