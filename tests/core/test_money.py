"""The one money display rule (`format_usd`) and the exact form (`usd_exact`), property-tested."""

from __future__ import annotations

import pathlib
import re
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import NANOS_PER_USD, format_usd, nanos_to_decimal, usd_exact

nanos = st.integers(min_value=-(10**21), max_value=10**21)
amounts = st.decimals(
    min_value=Decimal("-1e12"),
    max_value=Decimal("1e12"),
    allow_nan=False,
    allow_infinity=False,
    places=12,
)
DISPLAY = re.compile(r"^-?\$(\d{1,3}(,\d{3})*\.\d{2}|0\.0\d*[1-9])$")


def _parse(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", ""))


@given(amounts)
def test_display_shape_and_sign(amount):
    text = format_usd(amount)
    assert DISPLAY.match(text), text
    assert text.startswith("-") == (amount < 0 and text != "-$0.00")


@given(amounts.filter(lambda a: abs(a) >= Decimal("0.01")))
def test_a_cent_and_up_is_two_decimals_half_even(amount):
    assert _parse(format_usd(amount)) == amount.quantize(Decimal("0.01"), ROUND_HALF_EVEN)


@given(amounts.filter(lambda a: 0 < abs(a) < Decimal("0.0099995")))
def test_below_a_cent_keeps_four_significant_digits(amount):
    shown = _parse(format_usd(amount))
    assert shown != 0 and (shown < 0) == (amount < 0)
    digits = shown.normalize().as_tuple().digits
    assert len(digits) <= 4
    # within half a unit in the 4th significant digit
    unit = Decimal(1).scaleb(abs(amount).adjusted() - 3)
    assert abs(shown - amount) <= unit / 2


@given(nanos)
def test_int_is_nanos(n):
    assert format_usd(n) == format_usd(Decimal(n) / NANOS_PER_USD)


@given(nanos)
def test_exact_round_trips(n):
    text = usd_exact(n)
    assert Decimal(text) == nanos_to_decimal(n) == Decimal(n) / NANOS_PER_USD
    _whole, frac = text.split(".")
    assert len(frac) >= 2 and (len(frac) == 2 or not frac.endswith("0"))


@given(amounts)
def test_exact_decimal_is_exact(amount):
    assert Decimal(usd_exact(amount)) == amount


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("1234.565"), "$1,234.56"),  # half-even: 6 is even
        (Decimal("1234.575"), "$1,234.58"),
        (Decimal("0.0042"), "$0.0042"),
        (Decimal("0.00123456"), "$0.001235"),
        (Decimal("0.0099996"), "$0.01"),
        (Decimal(0), "$0.00"),
        (0, "$0.00"),
        (Decimal("-2.5"), "-$2.50"),
        (1, "$0.000000001"),
        (1_500_000_000, "$1.50"),
        (Decimal("1000000"), "$1,000,000.00"),
    ],
)
def test_examples(value, shown):
    assert format_usd(value) == shown


def test_exact_examples():
    assert usd_exact(1_500_000_000) == "1.50"
    assert usd_exact(0) == "0.00"
    assert usd_exact(1) == "0.000000001"
    assert usd_exact(Decimal("-3")) == "-3.00"
    assert usd_exact(Decimal("-0.000")) == "0.00"


@pytest.mark.parametrize("bad", [1.5, "1", None, True, Decimal("NaN"), Decimal("Infinity")])
def test_rejects_what_is_not_money(bad):
    with pytest.raises((TypeError, ValueError)):
        format_usd(bad)


def test_no_other_module_formats_dollars_for_people():
    """One display rule: app code shows money through `core.money.format_usd` (the `usd`
    template filter calls it). The gateway's hot path writes exact values, not displays."""
    root = pathlib.Path(__file__).resolve().parents[2]
    pattern = re.compile(r'f"\$\{|:,\.2f|quantize\(Decimal\(["\']0\.01["\']\)')
    offenders = []
    for app in ("workspaces", "billing", "attribution", "efficiency", "alephant"):
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []


@given(st.integers(-(10**30), 10**30))
def test_nano_dollars_are_written_as_the_decimal_path_writes_them(nanos):
    """`usd_exact` of an int (nano-USD, the gateway's budget header) skips the Decimal; the text
    is the Decimal path's, digit for digit, sign and trimmed zeros included."""
    assert usd_exact(nanos) == usd_exact(nanos_to_decimal(nanos))
