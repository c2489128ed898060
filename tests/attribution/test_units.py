"""Periods, money formatting, burn bars and forecasts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from attribution.budget_burn import budget_burns
from attribution.periods import period_from_params
from attribution.services.rollups import rollup_workspace
from attribution.templatetags.spend import pct_change, usd
from tests.attribution.factories import usage
from workspaces.tables import Table, csv_response

BERLIN = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 3, 29, 12, 0, tzinfo=dt.UTC)  # the day Berlin moves to summer time


def test_periods_in_the_workspace_zone():
    month = period_from_params({}, tz=BERLIN, now=NOW)
    assert (month.kind, month.start, month.end) == (
        "month",
        dt.date(2026, 3, 1),
        dt.date(2026, 4, 1),
    )
    assert month.previous().start == dt.date(2026, 2, 1) and month.previous().days == 28
    day = period_from_params({"period": "day"}, tz=BERLIN, now=NOW)
    assert day.end_at - day.start_at == dt.timedelta(hours=23)  # DST day: 23 hours
    week = period_from_params({"period": "week", "date": "2026-03-29"}, tz=BERLIN, now=NOW)
    assert week.start == dt.date(2026, 3, 23)  # Monday
    custom = period_from_params(
        {"period": "custom", "start": "2026-01-05", "end": "2026-01-07"}, tz=BERLIN, now=NOW
    )
    assert custom.days == 3 and custom.previous().start == dt.date(2026, 1, 2)
    bad = period_from_params(
        {"period": "custom", "start": "2026-02-01", "end": "2025-01-01"}, tz=BERLIN, now=NOW
    )
    assert bad.kind == "month"


def test_money_formatting_is_exact_text():
    assert usd(Decimal("1234.565")) == "$1,234.56"  # half-even, the one rule (core.money)
    assert usd(Decimal("0.0042")) == "$0.0042"
    assert usd(Decimal("0.000000000001")) == "$0.000000000001"
    assert usd(Decimal(0)) == "$0.00"
    assert usd(Decimal("-2.5")) == "-$2.50"
    assert pct_change(Decimal(150), Decimal(100)) == "+50.0%"
    assert pct_change(Decimal(1), Decimal(0)) == "new"


def test_csv_cells_are_exact_and_safe():
    table = Table(
        "t",
        ["label", "cost"],
        [["=HYPERLINK(1)", Decimal("0.000000000001")], ["-3", Decimal("2.500")]],
    )
    body = csv_response(table, filename="t").content.decode()
    assert "'=HYPERLINK(1),0.000000000001" in body
    assert "-3,2.500" in body


def test_burn_bar_and_forecast(scoped):
    from billing.services.budgets import budget_create

    cast = scoped
    ws = cast.workspace
    now = dt.datetime.now(dt.UTC)
    budget = budget_create(
        workspace=ws,
        actor=None,
        scope_type="member",
        scope_id=cast.member.pk,
        metric="usd",
        amount_usd=Decimal(10),
        period="month",
    )
    budget_create(
        workspace=ws,
        actor=None,
        scope_type="member",
        scope_id=cast.member.pk,
        metric="requests",
        limit_count=4,
        period="lifetime",
    )
    usage(ws, at=now - dt.timedelta(seconds=30), cost="2.5", member=cast.member)
    usage(ws, at=now - dt.timedelta(seconds=20), cost="0.5", member=cast.admin)
    rollup_workspace(workspace=ws)
    burns = {b.budget.metric: b for b in budget_burns(workspace=ws, now=now)}
    spend = burns["usd"]
    assert spend.budget.pk == budget.pk
    assert (spend.used, spend.percent) == (Decimal("2.5"), Decimal("25.0"))
    # Forecast only past 10 % of the period (tests/attribution/test_console.py pins the model).
    assert spend.forecast is None or spend.forecast >= spend.used
    assert spend.ladder == [50, 75, 90, 100]
    assert spend.state in ("ok", "forecast-over")
    count = burns["requests"]
    assert (count.used, count.percent, count.forecast) == (Decimal(1), Decimal("25.0"), None)
