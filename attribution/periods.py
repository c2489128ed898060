"""Reporting periods in the workspace's time zone: day, week (Monday first), month, custom."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from core.periods import calendar_period

KINDS = ("day", "week", "month", "custom")
MAX_CUSTOM_DAYS = 366


@dataclass(frozen=True)
class Period:
    kind: str
    start: dt.date  # first local day
    end: dt.date  # exclusive
    tz: ZoneInfo

    # In UTC: arithmetic between two aware datetimes of one zone would ignore a DST change.
    @property
    def start_at(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=self.tz).astimezone(dt.UTC)

    @property
    def end_at(self) -> dt.datetime:
        return dt.datetime.combine(self.end, dt.time(), tzinfo=self.tz).astimezone(dt.UTC)

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def hourly(self) -> bool:
        return self.days <= 2

    @property
    def last_day(self) -> dt.date:
        return self.end - dt.timedelta(days=1)

    @property
    def label(self) -> str:
        if self.kind == "day":
            return self.start.strftime("%a %d %b %Y")
        if self.kind == "month":
            return self.start.strftime("%B %Y")
        return f"{self.start:%d %b %Y} – {self.last_day:%d %b %Y}"

    def previous(self) -> Period:
        if self.kind == "month":
            prev_end = self.start
            prev_start = (self.start - dt.timedelta(days=1)).replace(day=1)
            return Period("month", prev_start, prev_end, self.tz)
        length = self.end - self.start
        return Period(self.kind, self.start - length, self.start, self.tz)

    def query(self) -> dict[str, str]:
        if self.kind == "custom":
            return {
                "period": "custom",
                "start": self.start.isoformat(),
                "end": self.last_day.isoformat(),
            }
        return {"period": self.kind, "date": self.start.isoformat()}

    def contains(self, day: dt.date) -> bool:
        return self.start <= day < self.end


# Dates a report can be about. Near date.min/date.max a period's end or the previous period
# overflows Python's date (a 500); anything outside falls back to the default like bad input.
EARLIEST = dt.date(1970, 1, 1)
LATEST = dt.date(9000, 12, 31)


def _parse_date(value: str | None) -> dt.date | None:
    try:
        day = dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None
    return day if day is not None and EARLIEST <= day <= LATEST else None


def period_for(kind: str, anchor: dt.date, tz: ZoneInfo) -> Period:
    kind = kind if kind in ("day", "week") else "month"
    start, end = calendar_period(kind, anchor)
    return Period(kind, start, end, tz)


def period_from_params(params: Mapping[str, str], *, tz: ZoneInfo, now: dt.datetime) -> Period:
    """This month by default; bad input falls back to the default instead of erroring."""
    today = now.astimezone(tz).date()
    kind = params.get("period") or "month"
    if kind == "custom":
        start, end = _parse_date(params.get("start")), _parse_date(params.get("end"))
        if start and end and start <= end and (end - start).days < MAX_CUSTOM_DAYS:
            return Period("custom", start, end + dt.timedelta(days=1), tz)
        kind = "month"
    if kind not in KINDS:
        kind = "month"
    anchor = _parse_date(params.get("date")) or today
    return period_for(kind, anchor, tz)
