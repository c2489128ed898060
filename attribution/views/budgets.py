"""Budgets: every budget's burn in the chosen period (a past period is its close), and one
budget's burn-down (actual, forecast band, cap, ladder marks)."""

from __future__ import annotations

from decimal import Decimal

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from alephant.replica import replica_reads_view
from attribution import selectors
from attribution.budget_burn import SCOPE_DIMENSION, budget_burns, period_anchor
from attribution.budget_chain import chain_burns
from attribution.charts_burn import burn_down
from attribution.exports import budgets_table
from attribution.views.common import base_context, export_slug, period_of
from billing.models import Budget
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required, workspace_required
from workspaces.models import SPEND_READER_ROLES
from workspaces.tables import render_with_export


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def budgets_page(request: WorkspaceRequest) -> HttpResponse:
    period, now = period_of(request), timezone.now()
    burns = budget_burns(workspace=request.workspace, now=now, at=period_anchor(period, now))
    context = base_context(
        request,
        period,
        burns=burns,
        closed=period.end_at <= now,
        can_edit=request.member.role != "member",
    )
    return render_with_export(
        request,
        "attribution/budgets.html",
        context,
        [budgets_table(burns)],
        slug=export_slug(request, period),
    )


def _cumulative(budget, workspace, window) -> list:
    """Running total of the budget's scope per bucket of its period (rollups; a budget with a
    model filter has no per-scope rollup, so its chart shows no actual line)."""
    if budget.model_filter or budget.metric != "usd":
        return []
    dim = SCOPE_DIMENSION[budget.scope_type]
    key = "" if budget.scope_type == "workspace" else str(budget.scope_id)
    series = selectors.spend_series(workspace=workspace, period=window, dimension=dim, key=key)
    total, out = Decimal(0), []
    for bucket, cost in series:
        total += cost
        out.append((bucket, total))
    return out


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def budget_detail(request: WorkspaceRequest, pk: int) -> HttpResponse:
    budget = get_in_workspace(Budget, workspace=request.workspace, pk=pk)
    period, now = period_of(request), timezone.now()
    burn = budget_burns(
        workspace=request.workspace,
        now=now,
        at=period_anchor(period, now),
        budgets=Budget.objects.filter(pk=budget.pk),
    )[0]
    chart = None
    if burn.window is not None and burn.money:
        points = _cumulative(budget, request.workspace, burn.window)
        chart = burn_down(burn, points, now=now, tz=request.workspace.tz)
    context = base_context(request, period, b=burn, chart=chart)
    return render(request, "attribution/budget_detail.html", context)


@workspace_required
@replica_reads_view
def my_budgets(request: WorkspaceRequest) -> HttpResponse:
    """A member's own caps (their chain, their agents' and keys'), live."""
    burns = chain_burns(workspace=request.workspace, entity=request.member)
    return render(request, "attribution/my_budgets.html", {"burns": burns})
