"""Efficiency pages: the ranking (`/efficiency/`) and one entity's grade with its evidence."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from alephant.replica import replica_reads_view
from efficiency import selectors, services
from efficiency.cache_policies import cache_policy_set
from efficiency.findings import SIGNAL_LABELS
from efficiency.models import (
    CacheScope,
    EfficiencyGrade,
    EntityKind,
    Period,
    ResponseCachePolicy,
)
from workspaces.decorators import role_required, workspace_required
from workspaces.models import MANAGER_ROLES, SPEND_READER_ROLES, Agent


def _period(request: HttpRequest) -> str:
    period = request.GET.get("period", Period.WEEK)
    return period if period in Period.values else Period.WEEK


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def ranking(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    period = _period(request)
    report = selectors.latest_report(workspace=workspace, period=period)
    if report is None:
        # First visit before the hourly task ran: compute now (one transaction, this scope).
        report = services.efficiency_compute(workspace=workspace, period=period)
    grades = list(selectors.report_grades(workspace=workspace, report=report))
    previous = services.efficiency_previous_ensure(workspace=workspace, report=report)
    trends = selectors.report_trends(workspace=workspace, report=report, previous=previous)
    for g in grades:
        g.trend = trends.get((g.entity_kind, g.entity_id))  # type: ignore[attr-defined]
    sections = [
        (kind.label + "s", [g for g in grades if g.entity_kind == kind.value])
        for kind in (EntityKind.MEMBER, EntityKind.AGENT, EntityKind.DEPARTMENT)
    ]
    cache_policy = ResponseCachePolicy.objects.filter(
        workspace=workspace, scope=CacheScope.WORKSPACE
    ).first()
    return render(request, "efficiency/ranking.html", {
        "report": report, "sections": sections, "period": period, "periods": Period.choices,
        "cache_policy": cache_policy, "previous": previous,
        "floors": selectors.workspace_settings(workspace=workspace),
    })  # fmt: skip


@require_POST
@role_required(*SPEND_READER_ROLES)
def recompute(request: HttpRequest) -> HttpResponse:
    period = _period(request)
    services.efficiency_compute(workspace=request.workspace, period=period)  # type: ignore[attr-defined]
    messages.success(request, "Efficiency grades recomputed from the ledger.")
    return redirect(f"/efficiency/?period={period}")


@require_POST
@role_required(*MANAGER_ROLES)
def cache_settings(request: HttpRequest) -> HttpResponse:
    """The workspace-wide response-cache opt-in (keys and agents: the API)."""
    try:
        ttl = min(max(int(request.POST.get("ttl_seconds") or 3600), 1), 30 * 86400)
    except ValueError:
        ttl = 3600
    enabled = request.POST.get("enabled") == "on"
    cache_policy_set(
        workspace=request.workspace,  # type: ignore[attr-defined]
        scope=CacheScope.WORKSPACE,
        enabled=enabled,
        ttl_seconds=ttl,
    )
    messages.success(request, f"Response cache {'on' if enabled else 'off'} for the workspace.")
    return redirect("/efficiency/")


@require_POST
@role_required(*MANAGER_ROLES)
def floor_settings(request: HttpRequest) -> HttpResponse:
    """The workspace's own dollar floors (blank: the default relative to spend)."""
    values = {}
    for name in ("grade_min_usd", "signal_min_usd"):
        raw = (request.POST.get(name) or "").strip()
        try:
            values[name] = Decimal(raw) if raw else None
        except InvalidOperation:
            messages.error(request, f"{name}: not an amount.")
            return redirect("/efficiency/")
    try:
        services.efficiency_settings_set(workspace=request.workspace, **values)  # type: ignore[attr-defined]
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
        return redirect("/efficiency/")
    messages.success(request, "Floors saved; recompute to apply them now.")
    return redirect("/efficiency/")


@workspace_required
@replica_reads_view
def entity_detail(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    workspace, member = request.workspace, request.member  # type: ignore[attr-defined]
    if kind not in EntityKind.values:
        raise Http404("Not found.")
    if not member.can_read_spend:
        own_agent = (
            kind == "agent"
            and Agent.objects.filter(workspace=workspace, pk=pk, owner=member).exists()
        )
        if not (own_agent or (kind == "member" and pk == member.pk)):
            raise PermissionDenied("Your role does not allow this.")
    grade = selectors.entity_grade(
        workspace=workspace, entity_kind=kind, entity_id=pk, period=_period(request)
    )
    if grade is None:
        raise Http404("No efficiency grade for this period.")
    signals = list(selectors.grade_signals(workspace=workspace, grade=grade))
    for s in signals:
        s.label = SIGNAL_LABELS.get(s.kind, s.kind)  # type: ignore[attr-defined]
    previous = selectors.previous_report(workspace=workspace, report=grade.report)
    trend = selectors.report_trends(workspace=workspace, report=grade.report, previous=previous)
    return render(request, "efficiency/detail.html", {
        "grade": grade, "signals": signals, "spend_url": _spend_url(grade),
        "trend": trend.get((grade.entity_kind, grade.entity_id)),
        "thresholds": sorted(grade.report.thresholds.items()),
    })  # fmt: skip


def _spend_url(grade: EfficiencyGrade) -> str:
    return f"/spend/{grade.entity_kind}s/{grade.entity_id}/"
