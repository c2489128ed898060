"""The date window of a reconciliation or export request: `since`/`until` (UTC days,
inclusive), or `period=month&date=YYYY-MM-DD` for a whole calendar month."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.utils import timezone

from core.periods import calendar_period

MAX_SPAN_DAYS = 400
DEFAULT_SPAN_DAYS = 30


def _date(params: Mapping[str, str], name: str) -> dt.date | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError({name: "A date as YYYY-MM-DD."}) from None


def month_of(day: dt.date) -> tuple[dt.date, dt.date]:
    first, following = calendar_period("month", day)
    return first, following - dt.timedelta(days=1)


def window_from_params(params: Mapping[str, str], *, today: dt.date | None = None):
    today = today or timezone.now().astimezone(dt.UTC).date()
    period = params.get("period")
    if period:
        if period != "month":
            raise ValidationError({"period": "Only month."})
        return month_of(_date(params, "date") or today)
    until = _date(params, "until") or today
    since = _date(params, "since") or until - dt.timedelta(days=DEFAULT_SPAN_DAYS - 1)
    if since > until:
        raise ValidationError({"since": "since is after until."})
    if (until - since).days >= MAX_SPAN_DAYS:
        raise ValidationError({"since": f"At most {MAX_SPAN_DAYS} days at once."})
    return since, until
