"""Agent sessions: the list (paged, exported whole) and one run's step timeline."""

from __future__ import annotations

from django.db.models import Count, Sum
from django.http import HttpResponse
from django.shortcuts import render

from alephant.replica import replica_reads_view
from attribution import selectors
from attribution.charts import session_timeline
from attribution.exports import sessions_table
from attribution.models import SessionRollup
from attribution.views.common import base_context, export_slug, page_number, period_of
from attribution.views.spend import drilldown
from billing.models import UsageRecord
from workspaces.decorators import WorkspaceRequest, role_required
from workspaces.models import SPEND_READER_ROLES
from workspaces.tables import csv_response

PER_PAGE = 100
EXPORT_CHUNK = 5000
TIMELINE_STEPS = 500  # a run longer than this shows its first 500 steps on the chart


def _all_sessions(ws, period, sort: str) -> list:
    rows: list = []
    while True:
        chunk = selectors.sessions(
            workspace=ws, period=period, sort=sort, limit=EXPORT_CHUNK, offset=len(rows)
        )
        rows.extend(chunk)
        if len(chunk) < EXPORT_CHUNK:
            return rows


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def sessions_list(request: WorkspaceRequest) -> HttpResponse:
    ws, period = request.workspace, period_of(request)
    sort = request.GET.get("sort", "cost")
    if sort not in selectors.SESSION_SORTS:
        sort = "cost"
    if request.GET.get("export") == "sessions":  # every run of the period, not one page
        table = sessions_table(_all_sessions(ws, period, sort))
        return csv_response(table, filename=f"{export_slug(request, period)}-sessions")
    page = page_number(request)
    rows = selectors.sessions(
        workspace=ws, period=period, sort=sort, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    summary = SessionRollup.objects.filter(
        workspace=ws, first_at__lt=period.end_at, last_at__gte=period.start_at
    ).aggregate(count=Count("id"), cost=Sum("cost_usd"))
    context = base_context(
        request,
        period,
        rows=rows,
        sort=sort,
        sorts=list(selectors.SESSION_SORTS),
        page=page,
        has_next=summary["count"] > page * PER_PAGE,
        session_count=summary["count"],
        session_cost=summary["cost"] or 0,
        export_names=["sessions"],
    )
    return render(request, "attribution/sessions.html", context)


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def session_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    steps = list(
        UsageRecord.objects.filter(workspace=request.workspace, session_id=key).order_by(
            "created_at", "id"
        )[:TIMELINE_STEPS]
    )
    return drilldown(
        request,
        dimension="session",
        key=key,
        title=f"Session {key}",
        by="agent",
        extra={"timeline": session_timeline(steps, tz=request.workspace.tz), "steps": len(steps)},
    )
