"""The finance owner's spend pages: overview, lists and drill-downs (CSV export of every table)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.loader import select_template
from django.utils import timezone

from alephant.replica import replica_reads_view
from attribution import selectors
from attribution.budget_burn import budget_burns, period_anchor
from attribution.budget_chain import chain_burns
from attribution.charts import spend_bars, stacked_bars
from attribution.charts_health import (
    cache_chart,
    cumulative_vs_previous,
    health_chart,
    trend_lines,
)
from attribution.exports import (
    overview_budgets_table,
    recent_requests_table,
    rows_table,
    series_table,
)
from attribution.models import RollupState
from attribution.series import health_series, model_stack, previous_to_date, totals_between
from attribution.series_health import cache_series, entity_trends
from attribution.views.alerts import recent_alerts
from attribution.views.common import (
    SEGMENTS,
    base_context,
    export_slug,
    label_recent,
    link_for,
    page_number,
    period_of,
)
from attribution.views.requests import requests_csv
from workspaces.decorators import WorkspaceRequest, role_required, workspace_required
from workspaces.models import SPEND_READER_ROLES
from workspaces.tables import render_with_export


def _previous(ws, period, now, *, dimension: str = "workspace", key: str = ""):
    start, end = previous_to_date(period, now)
    return totals_between(workspace=ws, start=start, end=end, dimension=dimension, key=key)


@workspace_required
@replica_reads_view
def overview(request: WorkspaceRequest) -> HttpResponse:
    member = request.member
    if not member.can_read_spend:
        return redirect(f"/spend/members/{member.pk}/")
    ws, period, now = request.workspace, period_of(request), timezone.now()
    totals = selectors.spend_totals(workspace=ws, period=period)
    series = selectors.spend_series(workspace=ws, period=period)
    tops = {
        dim: selectors.top_rows(
            workspace=ws, period=period, dimension=dim, limit=8, total=totals.cost
        )
        for dim in ("member", "agent", "department", "model")
    }
    for rows in tops.values():
        for r in rows:
            r.extra["url"] = link_for(r.dimension, r.key)
    burns = budget_burns(workspace=ws, now=now, at=period_anchor(period, now))
    stack_buckets, bands = model_stack(workspace=ws, period=period)
    tables = [rows_table(f"top-{dim}s", rows, key_header=dim) for dim, rows in tops.items()]
    tables.append(overview_budgets_table(burns))
    tables.append(series_table(series))
    context = base_context(
        request,
        period,
        totals=totals,
        previous=_previous(ws, period, now),
        tops=tops,
        burns=burns,
        chart=spend_bars(series, hourly=period.hourly, tz=ws.tz),
        model_chart=stacked_bars(stack_buckets, bands, hourly=period.hourly, tz=ws.tz),
        **_health_charts(ws, period),
        alerts=recent_alerts(ws, limit=5),
        rolled_up_at=RollupState.objects.filter(workspace=ws)
        .values_list("updated_at", flat=True)
        .first(),
    )
    return render_with_export(
        request,
        "attribution/overview.html",
        context,
        tables,
        slug=export_slug(request, period, "overview"),
    )


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def spend_list(request: WorkspaceRequest, segment: str) -> HttpResponse:
    if segment not in SEGMENTS:
        raise Http404("Unknown list.")
    dimension, heading = SEGMENTS[segment]
    ws, period = request.workspace, period_of(request)
    rows = selectors.top_rows(workspace=ws, period=period, dimension=dimension, limit=None)
    for r in rows:
        r.extra["url"] = link_for(dimension, r.key)
    trend = None
    if dimension in TREND_DIMENSIONS:
        trend_buckets, lines = entity_trends(workspace=ws, period=period, dimension=dimension)
        trend = trend_lines(trend_buckets, lines, hourly=period.hourly, tz=ws.tz, noun=dimension)
    context = base_context(
        request,
        period,
        rows=rows,
        trend=trend,
        heading=heading,
        segment=segment,
        total=selectors.spend_totals(workspace=ws, period=period),
    )
    return render_with_export(
        request,
        "attribution/list.html",
        context,
        [rows_table(segment, rows, key_header=dimension)],
        slug=export_slug(request, period),
    )


def drilldown(
    request: WorkspaceRequest,
    *,
    dimension: str,
    key: str,
    title: str,
    subtitle: str = "",
    by: str = "model",
    extra: dict | None = None,
    entity=None,
    template: str = "attribution/drilldown.html",
) -> HttpResponse:
    ws, period, now = request.workspace, period_of(request), timezone.now()
    # The request table shows one page; its export streams every ledger row of the period.
    if request.GET.get("export") in ("requests", "recent-requests"):
        return requests_csv(
            request, period=period, filters={LOG_FILTERS[dimension]: key}, page=f"{dimension}-{key}"
        )
    totals = selectors.spend_totals(workspace=ws, period=period, dimension=dimension, key=key)
    series = selectors.spend_series(workspace=ws, period=period, dimension=dimension, key=key)
    split = selectors.breakdown(workspace=ws, period=period, dimension=dimension, key=key, by=by)
    for r in split:
        r.extra["url"] = link_for(by, r.key)
    page = page_number(request)
    recent, has_next = selectors.recent_requests(
        workspace=ws, period=period, dimension=dimension, key=key, page=page
    )
    label_recent(ws, recent)
    tables = [
        rows_table(f"by-{by}", split, key_header=by),
        series_table(series),
        recent_requests_table(recent),
    ]
    efficiency = select_template(["efficiency/_drilldown_card.html", "attribution/_empty.html"])
    context = base_context(
        request,
        period,
        title=title,
        subtitle=subtitle,
        dimension=dimension,
        key=key,
        totals=totals,
        previous=_previous(ws, period, now, dimension=dimension, key=key),
        chart=spend_bars(series, hourly=period.hourly, tz=ws.tz),
        trend=_trend(ws, period, series, dimension=dimension, key=key),
        **_health_charts(ws, period, dimension=dimension, key=key),
        split=split,
        by=by,
        recent=recent,
        page=page,
        has_next=has_next,
        chain=chain_burns(workspace=ws, entity=entity, at=period_anchor(period, now), now=now),
        requests_url=f"/requests/?{_log_filter(dimension, key)}",
        efficiency_template=efficiency.template.name,
        **(extra or {}),
    )
    return render_with_export(
        request, template, context, tables, slug=export_slug(request, period, f"{dimension}-{key}")
    )


TREND_DIMENSIONS = ("member", "agent", "department")


def _trend(ws, period, series, *, dimension: str, key: str):
    """Members, agents and departments: cumulative spend against the previous period."""
    if dimension not in TREND_DIMENSIONS:
        return None
    prev = period.previous()
    before = selectors.spend_series(workspace=ws, period=prev, dimension=dimension, key=key)
    now = timezone.now()
    # The current line stops at now: a flat line into the future would read as a forecast.
    so_far = [(b, v) for b, v in series if b <= now] or series[:1]
    return cumulative_vs_previous(
        so_far,
        before,
        labels=(period.label, prev.label),
        axis=[b for b, _v in series],
        hourly=period.hourly,
        tz=ws.tz,
    )


def _health_charts(ws, period, *, dimension: str = "workspace", key: str = "") -> dict:
    """Error rate + latency (ledger) and cache hit rate + savings (rollups) of one scope."""
    health = health_series(workspace=ws, period=period, dimension=dimension, key=key)
    cache = cache_series(workspace=ws, period=period, dimension=dimension, key=key)
    return {
        # Half-width charts (side by side): a narrower viewBox keeps their labels readable.
        "health_chart": health_chart(health, hourly=period.hourly, tz=ws.tz, width=600),
        "cache_chart": cache_chart(cache, hourly=period.hourly, tz=ws.tz, width=600),
    }


LOG_FILTERS = {
    "member": "member",
    "agent": "agent",
    "department": "department",
    "gateway_key": "key",
    "model": "model",
    "session": "session",
    "property": "property",
    "provider": "provider",
}


def _log_filter(dimension: str, key: str) -> str:
    name = LOG_FILTERS.get(dimension)
    return urlencode({name: key}) if name else ""
