"""Server-rendered SVG charts: no JavaScript library, no CDN, readable without JS.

Only numbers and escaped labels go into the markup.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from core.money import format_usd as usd


def spend_bars(
    series: list[tuple[dt.datetime, Decimal]],
    *,
    hourly: bool,
    tz,
    width: int = 1000,
    height: int = 200,
) -> SafeString:
    """A bar chart of spend per bucket with a max label and a few time labels."""
    n = max(len(series), 1)
    top = max((v for _, v in series), default=Decimal(0))
    pad_l, pad_b, pad_t = 64, 22, 8
    plot_w, plot_h = width - pad_l - 4, height - pad_b - pad_t
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Spend over time">',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 4}" y2="{pad_t + plot_h}" '
        'class="axis"/>',
        f'<text x="{pad_l - 6}" y="{pad_t + 10}" text-anchor="end" class="tick">'
        f"{escape(usd(top))}</text>",
        f'<text x="{pad_l - 6}" y="{pad_t + plot_h}" text-anchor="end" class="tick">$0</text>',
    ]
    every = max(1, n // 8)
    for i, (bucket, value) in enumerate(series):
        local = bucket.astimezone(tz)
        label = local.strftime("%H:%M") if hourly else local.strftime("%d %b")
        h = float(value / top) * plot_h if top else 0.0
        x = pad_l + i * slot + (slot - bar_w) / 2
        y = pad_t + plot_h - h
        title = f"{local:%Y-%m-%d %H:%M}" if hourly else f"{local:%Y-%m-%d}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" class="bar">'
            f"<title>{escape(title)}: {escape(usd(value))}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'class="tick">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def sparkline(values: list[Decimal], *, width: int = 100, height: int = 22) -> SafeString:
    if not values:
        return mark_safe("")
    top = max(values) or Decimal(1)
    n = len(values)
    step = width / max(n - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - float(v / top) * (height - 4):.1f}"
        for i, v in enumerate(values)
    )
    return format_html(
        '<svg class="spark" viewBox="0 0 {} {}" width="{}" height="{}" aria-hidden="true">'
        '<polyline points="{}" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>',
        width,
        height,
        width,
        height,
        points,
    )
