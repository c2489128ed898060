"""Money and number formatting for every page and e-mail template (exact Decimal in, text out).

`usd` is the one money filter: efficiency templates load this library too."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

from attribution.budget_burn import budget_burns
from attribution.charts import sparkline
from core.money import format_usd

register = template.Library()


@register.filter
def usd(value) -> str:
    """The page form of an amount: the one display rule, `core.money.format_usd`."""
    if value is None or value == "":
        return "$0.00"
    try:
        amount = value if isinstance(value, int | Decimal) else Decimal(str(value))
        return format_usd(amount)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)


@register.simple_tag(takes_context=True)
def workspace_budget_burns(context) -> list:
    """Burn bars of every budget in the request's workspace (for billing's budget page, which
    must not import the rollups it reads: they live here, above billing)."""
    return budget_burns(workspace=context["request"].workspace)


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
