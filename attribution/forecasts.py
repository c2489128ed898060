"""Budget forecasts a finance owner can act on: the one model, as a pure function.

The model (docs/ARCHITECTURE.md "Forecasts" repeats it):

1. **No forecast from too little data.** Until `MIN_ELAPSED_SHARE` of the period has passed
   and at least `MIN_ELAPSED` of wall time, a projection is dominated by the first burst of
   the day (an hour of a month projected x720 turned $11 into $8,124): show none.
2. **Blend the run-rate with history.** The current run-rate (used / elapsed) is blended with
   a baseline rate (the previous month for monthly budgets, the trailing 7 days for daily and
   weekly ones), weighted by the share of the period elapsed: early on history dominates,
   late in the period what actually happened does. No history: the run-rate alone.
3. **A band, not a point.** Low and high project the slower and the faster of the two rates.
4. **A hard stop caps it.** A hard-stopped scope cannot spend past its cap, so no figure
   exceeds the cap; a scope the gateway is already blocking forecasts what it has spent.
5. **Closed periods have no forecast**: their final spend is the figure.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

MIN_ELAPSED_SHARE = Decimal("0.10")
MIN_ELAPSED = dt.timedelta(hours=1)
MONEY_STEP = Decimal("0.000001")


@dataclass(frozen=True)
class Forecast:
    value: Decimal  # projected spend at period end
    low: Decimal
    high: Decimal
    uncapped: Decimal  # what the scope would spend without its hard stop
    basis: str  # how it was made, shown on the page


@dataclass(frozen=True)
class Baseline:
    used: Decimal
    seconds: float


def _q(value: Decimal, money: bool) -> Decimal:
    return value.quantize(MONEY_STEP if money else Decimal(1))


def budget_forecast(
    *,
    used: Decimal,
    limit: Decimal,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    baseline: Baseline | None,
    hard_stop: bool,
    blocked: bool,
    money: bool = True,
) -> Forecast | None:
    """The projected spend at `end` of a period [start, end) seen at `now`, or None."""
    total = Decimal((end - start).total_seconds())
    elapsed = Decimal((min(now, end) - start).total_seconds())
    if now >= end or total <= 0:
        return None
    if elapsed < total * MIN_ELAPSED_SHARE or elapsed < Decimal(MIN_ELAPSED.total_seconds()):
        return None
    if blocked and hard_stop:
        held = _q(min(used, limit) if limit else used, money)
        return Forecast(held, held, held, held, "blocked by its hard stop until the reset")
    remaining = total - elapsed
    current = used / elapsed
    share = elapsed / total
    if baseline is not None and baseline.seconds > 0 and baseline.used > 0:
        past = baseline.used / Decimal(baseline.seconds)
        rate = share * current + (1 - share) * past
        low_rate, high_rate = min(current, past), max(current, past)
        basis = f"run-rate blended {share:.0%} with history"
    else:
        rate = low_rate = high_rate = current
        basis = "run-rate (no history yet)"
    uncapped = used + rate * remaining
    values = [uncapped, used + low_rate * remaining, used + high_rate * remaining]
    if hard_stop and limit:
        values = [min(v, max(limit, used)) for v in values]
    point, low, high = (_q(v, money) for v in values)
    return Forecast(point, low, high, _q(uncapped, money), basis)
