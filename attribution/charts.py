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


# A palette readable in both themes; models past it share the last colour ("other").
PALETTE = ("#4a6cf7", "#e8833a", "#2a9d8f", "#c2417a", "#8a63d2", "#6b8e23", "#8d8d99")


def _frame(width: int, height: int, label: str, desc: str) -> list[str]:
    return [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}"><title>{escape(label)}</title><desc>{escape(desc)}</desc>'
    ]


def stacked_bars(
    buckets: list[dt.datetime],
    bands: list[tuple[str, list[Decimal]]],
    *,
    hourly: bool,
    tz,
    width: int = 1000,
    height: int = 220,
) -> SafeString:
    """Spend per bucket stacked by model, with a legend; every segment has its exact title
    and is reachable from the keyboard."""
    n = max(len(buckets), 1)
    sums = [sum((b[1][i] for b in bands), Decimal(0)) for i in range(len(buckets))]
    top = max(sums, default=Decimal(0))
    pad_l, pad_b, pad_t = 64, 22, 8
    plot_w, plot_h = width - pad_l - 4, height - pad_b - pad_t
    slot = plot_w / n
    bar_w = max(slot * 0.8, 1.0)
    desc = "; ".join(f"{name}: {usd(sum(vals, Decimal(0)))}" for name, vals in bands) or "no spend"
    parts = _frame(width, height, "Spend by model over time", desc)
    parts.append(
        f'<text x="{pad_l - 6}" y="{pad_t + 10}" text-anchor="end" class="tick">'
        f"{escape(usd(top))}</text>"
    )
    every = max(1, n // 8)
    for i, bucket in enumerate(buckets):
        local = bucket.astimezone(tz)
        x = pad_l + i * slot + (slot - bar_w) / 2
        y: float = pad_t + plot_h
        for j, (name, values) in enumerate(bands):
            value = values[i]
            if not value or not top:
                continue
            h = float(value / top) * plot_h
            y -= h
            when = f"{local:%Y-%m-%d %H:%M}" if hourly else f"{local:%Y-%m-%d}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[min(j, len(PALETTE) - 1)]}" tabindex="0">'
                f"<title>{escape(when)} {escape(name)}: {escape(usd(value))}</title></rect>"
            )
        if i % every == 0:
            label = local.strftime("%H:%M") if hourly else local.strftime("%d %b")
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                f'class="tick">{escape(label)}</text>'
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[min(j, len(PALETTE) - 1)]}"></i>'
        f"{escape(name)}</span>"
        for j, (name, _v) in enumerate(bands)
    )
    parts.append(f'<p class="legend">{legend}</p>')
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def session_timeline(steps: list, *, tz, width: int = 1000, row: int = 16) -> SafeString:
    """One bar per step of a run, on the run's own time axis (not the month's): its model,
    tokens and cost in the title; a request sent again (same fingerprint) drawn as a repeat."""
    if not steps:
        return mark_safe("")
    start, end = steps[0].created_at, steps[-1].created_at
    span = max((end - start).total_seconds(), 1.0)
    top = max((s.cost_usd for s in steps), default=Decimal(0)) or Decimal(1)
    seen: dict[str, int] = {}
    height = 30 + row * min(len(steps), 60)
    pad_l = 64
    plot_w = width - pad_l - 8
    parts = _frame(width, height, "Session timeline", f"{len(steps)} steps over {int(span)} s")
    for i, s in enumerate(steps):
        repeat = bool(s.fingerprint) and s.fingerprint in seen
        seen[s.fingerprint] = seen.get(s.fingerprint, 0) + 1
        x = pad_l + (s.created_at - start).total_seconds() / span * (plot_w - 40)
        w = max(float(s.cost_usd / top) * 40, 2.0)
        y = 20 + (i % 60) * row
        offset = (s.created_at - start).total_seconds()
        parts.append(
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 4}" tabindex="0" '
            f'class="step{" repeat" if repeat else ""}"><title>step {i + 1} +{offset:.0f}s '
            f"{escape(s.provider)}/{escape(s.model)} {s.input_tokens}+{s.output_tokens} tokens "
            f"{escape(usd(s.cost_usd))}{' (repeat)' if repeat else ''}</title></rect>"
        )
    parts.append(
        f'<text x="{pad_l}" y="12" class="tick">{start.astimezone(tz):%H:%M:%S}</text>'
        f'<text x="{width - 8}" y="12" text-anchor="end" class="tick">'
        f"{end.astimezone(tz):%H:%M:%S}</text></svg>"
    )
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only
