"""Server-rendered SVG for error rate and latency, cache hit rate and savings, and spend
trend lines per member / agent / department. Like `charts.py`: numbers and escaped labels
only, a title and a text alternative on every chart, and every bucket's exact figures in a
keyboard-focusable element's <title>."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from attribution.charts import PALETTE, _frame
from core.money import format_usd as usd

PAD_L, PAD_R, PAD_T, PAD_B = 64, 64, 10, 22


def _when(bucket: dt.datetime, *, hourly: bool, tz) -> tuple[str, str]:
    local = bucket.astimezone(tz)
    if hourly:
        return f"{local:%Y-%m-%d %H:%M}", local.strftime("%H:%M")
    return f"{local:%Y-%m-%d}", local.strftime("%d %b")


def _pct(part: Decimal | int, whole: Decimal | int) -> str:
    return f"{Decimal(part) * 100 / Decimal(whole):.1f} %" if whole else "-"


def _ticks(n: int, slot: float, height: int, labels: list[str]) -> list[str]:
    every = max(1, n // 8)
    return [
        f'<text x="{PAD_L + i * slot + slot / 2:.1f}" y="{height - 6}" text-anchor="middle" '
        f'class="tick">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % every == 0
    ]


def _axis_labels(width: int, plot_h: float, left: str, right: str) -> list[str]:
    return [
        f'<text x="{PAD_L - 6}" y="{PAD_T + 10}" text-anchor="end" class="tick">'
        f"{escape(left)}</text>",
        f'<text x="{width - PAD_R + 6}" y="{PAD_T + 10}" class="tick">{escape(right)}</text>',
        f'<line x1="{PAD_L}" y1="{PAD_T + plot_h}" x2="{width - PAD_R}" y2="{PAD_T + plot_h}" '
        'class="axis"/>',
    ]


def health_chart(
    series: list[tuple[dt.datetime, int, int, int | None]],
    *,
    hourly: bool,
    tz,
    width: int = 1000,
    height: int = 200,
) -> SafeString:
    """Error rate per bucket (bars, left scale) and mean latency (line, right scale)."""
    n = max(len(series), 1)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    slot = plot_w / n
    rates = [Decimal(e) / Decimal(r) if r else Decimal(0) for _, r, e, _l in series]
    top_rate = max(rates, default=Decimal(0)) or Decimal(1)
    top_ms = max((lat or 0 for *_x, lat in series), default=0) or 1
    requests = sum(r for _, r, _e, _l in series)
    errors = sum(e for _, _r, e, _l in series)
    desc = f"{requests} requests, {errors} errors or blocks ({_pct(errors, requests)})"
    parts = _frame(width, height, "Error rate and latency over time", desc)
    parts += _axis_labels(width, plot_h, f"{top_rate * 100:.1f} %", f"{top_ms} ms")
    points, labels = [], []
    for i, ((bucket, reqs, errs, latency), rate) in enumerate(zip(series, rates, strict=True)):
        full, short = _when(bucket, hourly=hourly, tz=tz)
        labels.append(short)
        x = PAD_L + i * slot
        h = float(rate / top_rate) * plot_h
        title = (
            f"{full}: {reqs} requests, {errs} errors or blocks ({_pct(errs, reqs)}), "
            f"mean latency {latency if latency is not None else '-'} ms"
        )
        parts.append(
            f'<g tabindex="0" data-bucket="{escape(full)}" data-requests="{reqs}" '
            f'data-errors="{errs}"><title>{escape(title)}</title>'
            f'<rect x="{x:.1f}" y="{PAD_T}" width="{slot:.1f}" height="{plot_h}" class="hit"/>'
            f'<rect x="{x + slot * 0.1:.1f}" y="{PAD_T + plot_h - h:.1f}" '
            f'width="{max(slot * 0.8, 1.0):.1f}" height="{h:.1f}" class="bar err"/></g>'
        )
        if latency is not None:
            y = PAD_T + plot_h - latency / top_ms * plot_h
            points.append(f"{x + slot / 2:.1f},{y:.1f}")
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" class="line latency" fill="none"/>')
    parts += _ticks(n, slot, height, labels)
    parts.append("</svg>")
    parts.append(
        '<p class="legend"><span class="key"><i class="k-err"></i>error rate (left)</span>'
        '<span class="key"><i class="k-latency"></i>mean latency (right)</span></p>'
    )
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def cache_chart(points: list, *, hourly: bool, tz, width: int = 1000, height: int = 200):
    """Dollars saved by cache hits per bucket (bars, left) and the hit rate (line, right)."""
    n = max(len(points), 1)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    slot = plot_w / n
    top_saved = max((p.saved for p in points), default=Decimal(0)) or Decimal(1)
    saved = sum((p.saved for p in points), Decimal(0))
    hits, reqs = sum(p.hits for p in points), sum(p.requests for p in points)
    desc = f"{hits} cache hits of {reqs} requests ({_pct(hits, reqs)}), {usd(saved)} saved"
    parts = _frame(width, height, "Cache hit rate and savings over time", desc)
    parts += _axis_labels(width, plot_h, usd(top_saved), "100 %")
    line, labels = [], []
    for i, p in enumerate(points):
        full, short = _when(p.bucket, hourly=hourly, tz=tz)
        labels.append(short)
        x = PAD_L + i * slot
        h = float(p.saved / top_saved) * plot_h
        title = (
            f"{full}: {p.hits} cache hits of {p.requests} requests ({_pct(p.hits, p.requests)}), "
            f"saved {usd(p.saved)}, paid {usd(p.cost)}"
        )
        parts.append(
            f'<g tabindex="0" data-bucket="{escape(full)}" data-hits="{p.hits}" '
            f'data-saved="{p.saved}"><title>{escape(title)}</title>'
            f'<rect x="{x:.1f}" y="{PAD_T}" width="{slot:.1f}" height="{plot_h}" class="hit"/>'
            f'<rect x="{x + slot * 0.1:.1f}" y="{PAD_T + plot_h - h:.1f}" '
            f'width="{max(slot * 0.8, 1.0):.1f}" height="{h:.1f}" class="bar saved"/></g>'
        )
        if p.hit_rate is not None:
            line.append(f"{x + slot / 2:.1f},{PAD_T + plot_h - float(p.hit_rate) * plot_h:.1f}")
    if line:
        parts.append(f'<polyline points="{" ".join(line)}" class="line hitrate" fill="none"/>')
    parts += _ticks(n, slot, height, labels)
    parts.append("</svg>")
    parts.append(
        '<p class="legend"><span class="key"><i class="k-saved"></i>saved (left)</span>'
        '<span class="key"><i class="k-hitrate"></i>hit rate (right)</span></p>'
    )
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def trend_lines(
    buckets: list[dt.datetime],
    lines: list[tuple[str, str, list[Decimal]]],
    *,
    hourly: bool,
    tz,
    noun: str,
    width: int = 1000,
    height: int = 240,
) -> SafeString:
    """One spend line per entity (the top spenders), each point focusable with its figure."""
    n = max(len(buckets), 1)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    slot = plot_w / n
    top = max((v for _k, _l, vals in lines for v in vals), default=Decimal(0)) or Decimal(1)
    desc = "; ".join(f"{label}: {usd(sum(vals, Decimal(0)))}" for _k, label, vals in lines)
    parts = _frame(width, height, f"Spend trend per {noun}", desc or "no spend")
    parts += _axis_labels(width, plot_h, usd(top), "")
    stamps = [_when(b, hourly=hourly, tz=tz) for b in buckets]
    for j, (key, label, values) in enumerate(lines):
        colour = PALETTE[min(j, len(PALETTE) - 1)]
        xy = [
            (PAD_L + i * slot + slot / 2, PAD_T + plot_h - float(v / top) * plot_h)
            for i, v in enumerate(values)
        ]
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        parts.append(
            f'<g data-trend="{escape(key)}" data-total="{sum(values, Decimal(0))}">'
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        for (x, y), v, (full, _s) in zip(xy, values, stamps, strict=True):
            if v:
                parts.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" tabindex="0">'
                    f"<title>{escape(full)} {escape(label)}: {escape(usd(v))}</title></circle>"
                )
        parts.append("</g>")
    parts += _ticks(n, slot, height, [s for _f, s in stamps])
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{PALETTE[min(j, len(PALETTE) - 1)]}"></i>'
        f"{escape(label)}</span>"
        for j, (_k, label, _v) in enumerate(lines)
    )
    parts.append(f'<p class="legend">{legend}</p>')
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only


def cumulative_vs_previous(
    current: list[tuple[dt.datetime, Decimal]],
    previous: list[tuple[dt.datetime, Decimal]],
    *,
    labels: tuple[str, str],
    axis: list[dt.datetime],
    hourly: bool,
    tz,
    width: int = 1000,
    height: int = 200,
) -> SafeString:
    """`axis` is the whole current period's buckets (the current line may stop at now).
    Cumulative spend of this period against the previous one, bucket by bucket from each
    period's start (a month against the month before, day 1 against day 1)."""
    n = max(len(axis), len(previous), 1)
    plot_w, plot_h = width - PAD_L - PAD_R, height - PAD_T - PAD_B
    slot = plot_w / n
    runs = []
    for series in (current, previous):
        total, run = Decimal(0), []
        for bucket, value in series:
            total += value
            run.append((bucket, total))
        runs.append(run)
    top = max((r[-1][1] for r in runs if r), default=Decimal(0)) or Decimal(1)
    desc = "; ".join(
        f"{label}: {usd(run[-1][1] if run else Decimal(0))}"
        for label, run in zip(labels, runs, strict=True)
    )
    parts = _frame(width, height, "Cumulative spend against the previous period", desc)
    parts += _axis_labels(width, plot_h, usd(top), "")
    for j, (label, run) in enumerate(zip(labels, runs, strict=True)):
        cls = "current" if j == 0 else "previous"
        xy = [
            (PAD_L + i * slot + slot / 2, PAD_T + plot_h - float(v / top) * plot_h)
            for i, (_b, v) in enumerate(run)
        ]
        total = run[-1][1] if run else Decimal(0)
        parts.append(
            f'<g data-cumulative="{cls}" data-total="{total}"><polyline points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
            + f'" fill="none" class="line {cls}"/>'
        )
        for (x, y), (bucket, v) in zip(xy, run, strict=True):
            full, _short = _when(bucket, hourly=hourly, tz=tz)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" class="dot {cls}" tabindex="0">'
                f"<title>{escape(label)}, {escape(full)}: {escape(usd(v))} so far</title></circle>"
            )
        parts.append("</g>")
    parts += _ticks(n, slot, height, [_when(b, hourly=hourly, tz=tz)[1] for b in axis])
    parts.append("</svg>")
    parts.append(
        '<p class="legend">'
        f'<span class="key"><i class="k-current"></i>{escape(labels[0])}</span>'
        f'<span class="key"><i class="k-previous"></i>{escape(labels[1])}</span></p>'
    )
    return mark_safe("".join(parts))  # noqa: S308 - numbers and escaped labels only
