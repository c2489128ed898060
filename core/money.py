"""Money: exact integer nano-dollars everywhere; one rule to show them to people.

Two ways out of the exact value, and only two:

* `format_usd` is what a person reads (pages, e-mails, CSV captions): "$1,234.57", "$0.0042".
* `usd_exact` is what a program reads (API fields, CSV cells, response headers): every digit kept.

Django-free and free of first-party imports: the hot path and every app use it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

NANOS_PER_USD = 1_000_000_000
_NANO_EXPONENT = -9
CENT = Decimal("0.01")
SIGNIFICANT_BELOW_A_CENT = 4

# Wide enough that no amount we can hold (up to 10**27 nano-dollars and beyond) is rounded by
# the context: the only rounding is the quantize we ask for.
_EXACT = Context(prec=60, rounding=ROUND_HALF_EVEN)


def nanos_to_decimal(nanos: int) -> Decimal:
    """Exact USD amount of an integer count of nano-dollars."""
    if isinstance(nanos, bool) or not isinstance(nanos, int):
        raise TypeError(f"nano-dollars are an int, got {type(nanos).__name__}")
    return Decimal(nanos).scaleb(_NANO_EXPONENT, _EXACT)


def _as_decimal(value: int | Decimal) -> Decimal:
    """An int is nano-dollars, a Decimal is dollars; anything else is a bug upstream."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"not a finite amount: {value}")
        return value
    return nanos_to_decimal(value)


def format_usd(value: int | Decimal) -> str:
    """The one display rule: $0.01 and up with 2 decimals and thousands separators; below a cent
    4 significant digits (so $0.0042 is not shown as $0.00); zero is "$0.00". Half-even."""
    amount = _as_decimal(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount == 0:
        return "$0.00"
    if amount < CENT:
        step = Decimal(1).scaleb(amount.adjusted() - SIGNIFICANT_BELOW_A_CENT + 1)
        rounded = amount.quantize(step, rounding=ROUND_HALF_EVEN, context=_EXACT)
        if rounded < CENT:
            text = f"{rounded:f}".rstrip("0")
            return f"{sign}${text}"
        amount = rounded  # 0.0099996 rounds up to a cent: show it the cent way
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_EVEN, context=_EXACT)
    return f"{sign}${rounded:,f}"


def usd_exact(value: int | Decimal) -> str:
    """The exact amount as a plain decimal string, no rounding: trailing zeros trimmed, but at
    least 2 decimals ("1.50", "0.000000001", "-3.00"). For API fields, CSV cells, headers.
    Nano-dollars are written from the integer's digits (no Decimal: ~1 us less a call, the
    gateway's budget header); the same text, property-tested against the Decimal path."""
    if type(value) is int:
        digits = str(abs(value)).rjust(10, "0")  # at least one digit before the point
        sign = "-" if value < 0 else ""
        return f"{sign}{digits[:-9]}.{digits[-9:].rstrip('0'):0<2}"
    amount = _as_decimal(value)
    text = f"{amount:f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    if whole in ("-0",) and set(frac) == {"0"}:
        whole = "0"
    return f"{whole}.{frac}"
