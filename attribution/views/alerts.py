"""The alert feed (grouped, named, filterable) and acknowledging a group."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from alephant.replica import replica_reads_view
from attribution.alert_groups import (
    SCOPES,
    STATES,
    alert_groups,
    alert_queryset,
    group_filter,
)
from billing.models import Alert
from billing.models.alerts import AlertKind
from billing.services.alert_ack import alert_acknowledge
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required
from workspaces.models import SPEND_READER_ROLES
from workspaces.tables import Table, render_with_export


def recent_alerts(workspace, *, limit: int = 5) -> list:
    """The overview's latest open alert groups."""
    return alert_groups(workspace=workspace, qs=alert_queryset(workspace=workspace), limit=limit)


def _filters(request: WorkspaceRequest) -> dict[str, str]:
    kind = request.GET.get("kind", "")
    scope = request.GET.get("scope", "")
    state = request.GET.get("state", "open")
    return {
        "kind": kind if kind in AlertKind.values else "",
        "scope": scope if scope in SCOPES else "",
        "state": state if state in STATES else "open",
    }


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def alerts_feed(request: WorkspaceRequest) -> HttpResponse:
    filters = _filters(request)
    groups = alert_groups(
        workspace=request.workspace, qs=alert_queryset(workspace=request.workspace, **filters)
    )
    table = Table(
        "alerts",
        [
            "last_at",
            "first_at",
            "kind",
            "title",
            "count",
            "steps",
            "acknowledged",
            "latest_message",
        ],
        [
            [
                g.last_at,
                g.first_at,
                g.kind,
                g.title,
                g.count,
                " ".join(str(s) for s in g.steps),
                g.acknowledged,
                g.latest.message,
            ]
            for g in groups
        ],
    )
    context = {
        "alerts": groups,
        "filters": filters,
        "kinds": AlertKind.choices,
        "scopes": SCOPES,
        "states": STATES,
        "filter_qs": urlencode(filters),
    }
    return render_with_export(
        request, "attribution/alerts.html", context, [table], slug=request.workspace.slug
    )


@require_POST
@role_required(*SPEND_READER_ROLES)
def alert_ack(request: WorkspaceRequest, pk: int) -> HttpResponse:
    alert = get_in_workspace(Alert, workspace=request.workspace, pk=pk)
    alert_acknowledge(
        workspace=request.workspace, actor=request.member, alert=alert, group=group_filter(alert)
    )
    back = request.POST.get("next", "")
    return redirect(back if back.startswith("/alerts/") else "/alerts/")
