"""Money and number formatting for the spend pages (exact Decimal in, text out)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()


@register.filter
def usd(value) -> str:
    """$1,234.56; amounts under a cent keep 4 significant decimals ($0.0042)."""
    if value is None or value == "":
        return "$0.00"
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount < Decimal("0.01"):
        text = f"{amount.quantize(Decimal('0.000001'), rounding=ROUND_HALF_UP):f}".rstrip("0")
        return f"{sign}${text}" if text != "0." else f"{sign}<$0.000001"
    rounded = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    whole, _, cents = f"{rounded:f}".partition(".")
    return f"{sign}${intcomma(int(whole))}.{cents}"


@register.filter
def num(value) -> str:
    return intcomma(int(value or 0))


@register.filter
def pct_change(current, previous) -> str:
    current, previous = Decimal(current or 0), Decimal(previous or 0)
    if previous == 0:
        return "new" if current else "–"
    change = (current - previous) * 100 / previous
    return f"{'+' if change >= 0 else ''}{change.quantize(Decimal('0.1'))}%"


@register.filter
def spark(values):
    from attribution.charts import sparkline

    return sparkline(values)


@register.filter
def duration(value) -> str:
    if value is None:
        return "–"
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"
