"""A budget's burn-down: cumulative actual spend, the forecast band to period end, the cap
and its ladder marks (server-rendered SVG, like every chart)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from core.money import format_usd as usd


def burn_down(
    burn, points: list, *, now: dt.datetime, tz, width: int = 1000, height: int = 240
) -> SafeString:
    window = burn.window
    start, end = window.start_at, window.end_at
    span = (end - start).total_seconds()
    detail = burn.forecast_detail
    top = max([burn.limit, *(v for _, v in points), detail.high if detail else Decimal(0)])
    top = top or Decimal(1)
    pad_l, pad_t, pad_b = 70, 10, 22
    plot_w, plot_h = width - pad_l - 8, height - pad_t - pad_b

    def xy(at: dt.datetime, value: Decimal) -> str:
        x = pad_l + max(min((at - start).total_seconds() / span, 1.0), 0.0) * plot_w
        return f"{x:.1f},{pad_t + plot_h - float(value / top) * plot_h:.1f}"

    label = f"Burn-down of {burn.scope_label}: {usd(burn.used)} of {usd(burn.limit)}"
    desc = (
        f"forecast {usd(detail.value)} ({usd(detail.low)} to {usd(detail.high)})"
        if detail
        else "no forecast"
    )
    parts = [
        f'<svg class="chart burndown" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title><desc>{escape(desc)}</desc>'
    ]
    cap_y = pad_t + plot_h - float(burn.limit / top) * plot_h
    parts.append(
        f'<line class="cap" x1="{pad_l}" x2="{width - 8}" y1="{cap_y:.1f}" y2="{cap_y:.1f}">'
        f"<title>cap {escape(usd(burn.limit))}</title></line>"
    )
    for step in burn.ladder:
        y = pad_t + plot_h - float(burn.limit * step / 100 / top) * plot_h
        parts.append(
            f'<line class="ladder" x1="{pad_l}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{pad_l - 4}" y="{y + 3:.1f}" text-anchor="end">{step}%</text>'
        )
    shown = [(b, v) for b, v in points if b <= now]
    if shown:
        line = " ".join(xy(b, v) for b, v in [(start, Decimal(0)), *shown])
        parts.append(f'<polyline class="actual" fill="none" points="{line}"/>')
    if detail is not None:
        here = min(now, end)
        band = f"{xy(here, burn.used)} {xy(end, detail.high)} {xy(end, detail.low)}"
        parts.append(
            f'<polygon class="band" points="{band}"><title>{escape(desc)}</title></polygon>'
        )
        parts.append(
            f'<polyline class="forecast" fill="none" points="{xy(here, burn.used)} '
            f'{xy(end, detail.value)}"/>'
        )
    parts.append(
        f'<text class="tick" x="{pad_l}" y="{height - 6}">{start.astimezone(tz):%d %b}</text>'
        f'<text class="tick" x="{width - 8}" y="{height - 6}" text-anchor="end">'
        f"{end.astimezone(tz):%d %b %H:%M}</text></svg>"
    )
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only
