"""The finance owner's spend pages (server-rendered; CSV export of every table)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import select_template
from django.utils import timezone

from attribution import selectors
from attribution.budget_burn import budget_burns
from attribution.charts import spend_bars
from attribution.exports import (
    budgets_table,
    overview_budgets_table,
    recent_requests_table,
    rows_table,
    series_table,
    sessions_table,
)
from attribution.models import RollupState
from attribution.periods import period_from_params
from billing.models import Alert
from gateway.models import GatewayKey
from workspaces.access import get_in_workspace
from workspaces.decorators import (
    WorkspaceRequest,
    require_self_or_reader,
    role_required,
    workspace_required,
)
from workspaces.models import SPEND_READER_ROLES, Agent, Department, Member
from workspaces.tables import Table, render_with_export

# URL segment -> (rollup dimension, heading)
SEGMENTS = {
    "members": ("member", "Members"),
    "agents": ("agent", "Agents"),
    "departments": ("department", "Departments"),
    "keys": ("gateway_key", "Gateway keys"),
    "models": ("model", "Models"),
    "providers": ("provider", "Providers"),
    "properties": ("property", "Custom properties"),
}
DIMENSION_SEGMENT = {dim: seg for seg, (dim, _h) in SEGMENTS.items()} | {"session": "sessions"}


def _period(request: WorkspaceRequest):
    return period_from_params(request.GET, tz=request.workspace.tz, now=timezone.now())


def _base_context(request: WorkspaceRequest, period, **extra) -> dict:
    return {
        "period": period,
        "period_query": period.query(),
        "period_qs": urlencode(period.query()),
        "today": timezone.localdate(),
        **extra,
    }


def link_for(dimension: str, key: str) -> str | None:
    """The drill-down URL of a row, or None for the unattributed bucket."""
    segment = DIMENSION_SEGMENT.get(dimension)
    if not key or segment is None:
        return None
    return f"/spend/{segment}/{key}/"


@workspace_required
def overview(request: WorkspaceRequest) -> HttpResponse:
    member = request.member
    if not member.can_read_spend:
        return redirect(f"/spend/members/{member.pk}/")
    ws, period = request.workspace, _period(request)
    totals = selectors.spend_totals(workspace=ws, period=period)
    previous = selectors.spend_totals(workspace=ws, period=period.previous())
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
    burns = budget_burns(workspace=ws)
    tables = [rows_table(f"top-{dim}s", rows, key_header=dim) for dim, rows in tops.items()]
    tables.append(overview_budgets_table(burns))
    tables.append(series_table(series))
    context = _base_context(
        request,
        period,
        totals=totals,
        previous=previous,
        tops=tops,
        burns=burns,
        chart=spend_bars(series, hourly=period.hourly, tz=ws.tz),
        alerts=_recent_alerts(ws, limit=5),
        rolled_up_at=RollupState.objects.filter(workspace=ws)
        .values_list("updated_at", flat=True)
        .first(),
    )
    return render_with_export(
        request, "attribution/overview.html", context, tables, slug="overview"
    )


@role_required(*SPEND_READER_ROLES)
def spend_list(request: WorkspaceRequest, segment: str) -> HttpResponse:
    if segment not in SEGMENTS:
        raise Http404("Unknown list.")
    dimension, heading = SEGMENTS[segment]
    ws, period = request.workspace, _period(request)
    rows = selectors.top_rows(workspace=ws, period=period, dimension=dimension, limit=None)
    for r in rows:
        r.extra["url"] = link_for(dimension, r.key)
    context = _base_context(
        request,
        period,
        rows=rows,
        heading=heading,
        segment=segment,
        total=selectors.spend_totals(workspace=ws, period=period),
    )
    return render_with_export(
        request,
        "attribution/list.html",
        context,
        [rows_table(segment, rows, key_header=dimension)],
        slug=segment,
    )


MAX_PAGE = 100_000  # past it the OFFSET would overflow Postgres' bigint (a 500, not a page)


def _page_number(request: WorkspaceRequest) -> int:
    try:
        return min(max(int(request.GET.get("page", "1")), 1), MAX_PAGE)
    except ValueError:
        return 1


def _label_recent(ws, recent: list) -> None:
    """Give each recent request its member's and agent's display names (one query each)."""
    labels = {
        dim: selectors.labels_for(
            workspace=ws,
            dimension=dim,
            keys=sorted({str(getattr(r, f"{dim}_id")) for r in recent if getattr(r, f"{dim}_id")}),
        )
        for dim in ("member", "agent")
    }
    for r in recent:
        r.member_label = labels["member"].get(str(r.member_id), "") if r.member_id else ""
        r.agent_label = labels["agent"].get(str(r.agent_id), "") if r.agent_id else ""


def _drilldown(
    request: WorkspaceRequest,
    *,
    dimension: str,
    key: str,
    title: str,
    subtitle: str = "",
    by: str = "model",
    extra: dict | None = None,
) -> HttpResponse:
    ws, period = request.workspace, _period(request)
    totals = selectors.spend_totals(workspace=ws, period=period, dimension=dimension, key=key)
    previous = selectors.spend_totals(
        workspace=ws, period=period.previous(), dimension=dimension, key=key
    )
    series = selectors.spend_series(workspace=ws, period=period, dimension=dimension, key=key)
    split = selectors.breakdown(workspace=ws, period=period, dimension=dimension, key=key, by=by)
    for r in split:
        r.extra["url"] = link_for(by, r.key)
    page = _page_number(request)
    recent, has_next = selectors.recent_requests(
        workspace=ws, period=period, dimension=dimension, key=key, page=page
    )
    _label_recent(ws, recent)
    tables = [
        rows_table(f"by-{by}", split, key_header=by),
        series_table(series),
        recent_requests_table(recent),
    ]
    efficiency = select_template(["efficiency/_drilldown_card.html", "attribution/_empty.html"])
    context = _base_context(
        request,
        period,
        title=title,
        subtitle=subtitle,
        dimension=dimension,
        key=key,
        totals=totals,
        previous=previous,
        chart=spend_bars(series, hourly=period.hourly, tz=ws.tz),
        split=split,
        by=by,
        recent=recent,
        page=page,
        has_next=has_next,
        efficiency_template=efficiency.template.name,
        **(extra or {}),
    )
    return render_with_export(
        request,
        "attribution/drilldown.html",
        context,
        tables,
        slug=f"{dimension}-{key}".replace("/", "_"),
    )


@workspace_required
def member_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    member = get_in_workspace(
        Member.objects.select_related("user", "department"), workspace=request.workspace, pk=pk
    )
    require_self_or_reader(request, member_id=member.pk)

    keys = GatewayKey.objects.filter(workspace=request.workspace, member=member)
    return _drilldown(
        request,
        dimension="member",
        key=str(member.pk),
        title=member.user.name or member.user.email,
        subtitle=f"{member.get_role_display()} · {member.department or 'no department'}",
        extra={"member_keys": keys, "entity": member},
    )


@role_required(*SPEND_READER_ROLES)
def agent_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    agent = get_in_workspace(
        Agent.objects.select_related("owner__user"), workspace=request.workspace, pk=pk
    )
    return _drilldown(
        request,
        dimension="agent",
        key=str(agent.pk),
        title=f"Agent {agent.slug}",
        subtitle=f"owned by {agent.owner.user.email}",
    )


@role_required(*SPEND_READER_ROLES)
def department_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    department = get_in_workspace(Department, workspace=request.workspace, pk=pk)
    return _drilldown(
        request,
        dimension="department",
        key=str(department.pk),
        title=f"Department {department.name}",
    )


@workspace_required
def key_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    key = get_in_workspace(GatewayKey, workspace=request.workspace, pk=pk)
    require_self_or_reader(request, member_id=key.member_id)
    return _drilldown(
        request,
        dimension="gateway_key",
        key=str(key.pk),
        title=f"Key {key.name}",
        subtitle=f"{key.prefix}… · {key.status}",
    )


@role_required(*SPEND_READER_ROLES)
def model_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    if "/" not in key:
        raise Http404("Models are provider/model.")
    return _drilldown(request, dimension="model", key=key, title=f"Model {key}", by="member")


@role_required(*SPEND_READER_ROLES)
def provider_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    return _drilldown(request, dimension="provider", key=key, title=f"Provider {key}")


@role_required(*SPEND_READER_ROLES)
def property_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    if "=" not in key:
        raise Http404("Properties are name=value.")
    return _drilldown(request, dimension="property", key=key, title=f"Property {key}")


@role_required(*SPEND_READER_ROLES)
def session_detail(request: WorkspaceRequest, key: str) -> HttpResponse:
    return _drilldown(request, dimension="session", key=key, title=f"Session {key}", by="agent")


@role_required(*SPEND_READER_ROLES)
def sessions_list(request: WorkspaceRequest) -> HttpResponse:
    ws, period = request.workspace, _period(request)
    sort = request.GET.get("sort", "cost")
    if sort not in selectors.SESSION_SORTS:
        sort = "cost"
    rows = selectors.sessions(workspace=ws, period=period, sort=sort, limit=100)
    table = sessions_table(rows)
    context = _base_context(
        request, period, rows=rows, sort=sort, sorts=list(selectors.SESSION_SORTS)
    )
    return render_with_export(
        request, "attribution/sessions.html", context, [table], slug="sessions"
    )


def _recent_alerts(workspace, *, limit: int | None = None) -> list:
    qs = Alert.objects.filter(workspace=workspace).order_by("-created_at", "-id")
    return list(qs[:limit] if limit else qs[:500])


@role_required(*SPEND_READER_ROLES)
def alerts_feed(request: WorkspaceRequest) -> HttpResponse:
    alerts = _recent_alerts(request.workspace)
    table = Table(
        "alerts",
        ["created_at", "kind", "title", "message", "step"],
        [[a.created_at, a.kind, a.title, a.message, a.step] for a in alerts],
    )
    return render_with_export(
        request, "attribution/alerts.html", {"alerts": alerts}, [table], slug="alerts"
    )


@role_required(*SPEND_READER_ROLES)
def budgets_page(request: WorkspaceRequest) -> HttpResponse:
    burns = budget_burns(workspace=request.workspace)
    table = budgets_table(burns)
    return render_with_export(
        request,
        "attribution/budgets.html",
        {"burns": burns, "can_edit": request.member.role != "member"},
        [table],
        slug="budgets",
    )


@workspace_required
def manage_index(request: WorkspaceRequest) -> HttpResponse:
    """The index of the admin pages (keys live in `gateway`, budgets and channels in `billing`)."""
    return render(request, "attribution/manage/index.html")
