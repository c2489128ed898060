"""The workspace request log (filters, search by request id, cursor paging) and the streamed
CSV of every ledger row a filter selects."""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render

from alephant.replica import replica_reads_view
from attribution import selectors
from attribution.exports import recent_requests_table
from attribution.request_log import (
    FILTERS,
    STATUSES,
    BadFilter,
    log_filter,
    log_page,
    log_queryset,
    log_rows_chunked,
)
from attribution.views.common import base_context, export_slug, label_recent, period_of
from workspaces.decorators import WorkspaceRequest, role_required
from workspaces.models import SPEND_READER_ROLES, Agent, Department, Member
from workspaces.tables import _cell


class _Echo:
    """csv.writer wants a file; this one hands each line back to the generator."""

    def write(self, value: str) -> str:
        return value


def requests_csv(request: WorkspaceRequest, *, period, filters: dict, page: str = "requests"):
    """Every ledger row of the period matching `filters`, streamed in keyset chunks."""
    ws = request.workspace
    try:
        condition = log_filter(filters)
    except BadFilter:
        return HttpResponse("Bad filter.", status=400, content_type="text/plain")
    header = recent_requests_table([]).headers

    def build():
        return log_queryset(workspace=ws, period=period, condition=condition)

    def lines():
        writer = csv.writer(_Echo())
        yield writer.writerow(header)
        for rows in log_rows_chunked(
            workspace_id=ws.pk, build=build, decorate=lambda rows: label_recent(ws, rows)
        ):
            for row in recent_requests_table(rows).rows:
                yield writer.writerow([_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    filename = export_slug(request, period, page.replace("/", "_")) + "-requests"
    response["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


def _choices(ws) -> dict:
    return {
        "members": [
            (str(m.pk), m.user.name or m.user.email)
            for m in Member.objects.filter(workspace=ws).select_related("user")
        ],
        "agents": [(str(a.pk), a.slug) for a in Agent.objects.filter(workspace=ws)],
        "departments": [(str(d.pk), d.name) for d in Department.objects.filter(workspace=ws)],
        "statuses": list(STATUSES),
    }


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def request_log(request: WorkspaceRequest) -> HttpResponse:
    ws, period = request.workspace, period_of(request)
    filters = {k: request.GET[k] for k in FILTERS if request.GET.get(k)}
    if request.GET.get("export"):
        return requests_csv(request, period=period, filters=filters)
    try:
        condition = log_filter(filters)
    except BadFilter:
        condition = None
    rows: list = []
    next_cursor = ""
    if condition is not None:
        qs = log_queryset(workspace=ws, period=period, condition=condition)
        rows, next_cursor = log_page(qs, cursor=request.GET.get("after", ""))
        label_recent(ws, rows)
    keep = {**period.query(), **filters}
    context = base_context(
        request,
        period,
        recent=rows,
        filters=filters,
        bad_filter=condition is None,
        next_url=f"?{urlencode({**keep, 'after': next_cursor})}" if next_cursor else "",
        first_url=f"?{urlencode(keep)}",
        export_url=f"?{urlencode({**keep, 'export': 'requests'})}",
        choices=_choices(ws),
        models=selectors.top_rows(
            workspace=ws, period=period, dimension="model", limit=None, with_spark=False
        ),
    )
    return render(request, "attribution/requests.html", context)
