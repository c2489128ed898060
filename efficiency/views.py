"""Efficiency pages: the ranking (`/efficiency/`) and one entity's grade with its evidence."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

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
def ranking(request: HttpRequest) -> HttpResponse:
    workspace = request.workspace  # type: ignore[attr-defined]
    period = _period(request)
    report = selectors.latest_report(workspace=workspace, period=period)
    if report is None:
        # First visit before the hourly task ran: compute now (one transaction, this scope).
        report = services.efficiency_compute(workspace=workspace, period=period)
    grades = selectors.report_grades(workspace=workspace, report=report)
    sections = [
        (kind.label + "s", [g for g in grades if g.entity_kind == kind.value])
        for kind in (EntityKind.MEMBER, EntityKind.AGENT, EntityKind.DEPARTMENT)
    ]
    cache_policy = ResponseCachePolicy.objects.filter(
        workspace=workspace, scope=CacheScope.WORKSPACE
    ).first()
    return render(request, "efficiency/ranking.html", {
        "report": report, "sections": sections, "period": period, "periods": Period.choices,
        "cache_policy": cache_policy,
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


@workspace_required
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
    return render(request, "efficiency/detail.html", {
        "grade": grade, "signals": signals, "spend_url": _spend_url(grade),
    })  # fmt: skip


def _spend_url(grade: EfficiencyGrade) -> str:
    return f"/spend/{grade.entity_kind}s/{grade.entity_id}/"
