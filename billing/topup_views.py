"""Pages for prepaid top-ups and the on-demand reset, on a budget's own page.

Thin HTML over `billing.services.topups` (validation, audit log, snapshot). Owners, admins and
finance act; a bad input re-renders the budget's page with the form's errors (HTTP 400)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from billing.forms import ResetForm, TopUpForm
from billing.models import Budget
from billing.services.topups import budget_reset, budget_top_up
from billing.views import budget_page
from core.money import format_usd
from gateway.snapshots import redis_client
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required
from workspaces.forms import apply_service_errors
from workspaces.models import SPEND_READER_ROLES


@require_POST
@role_required(*SPEND_READER_ROLES)
def budget_top_up_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    budget = get_in_workspace(Budget, workspace=request.workspace, pk=pk)
    form = TopUpForm(request.POST)
    if form.is_valid():
        try:
            top_up = budget_top_up(budget=budget, actor=request.member, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"Topped up {format_usd(top_up.amount_usd)}: "
                f"the budget is now {format_usd(top_up.balance_after_usd)}.",
            )
            return redirect("manage-budget", pk=budget.pk)
    return budget_page(request, budget, top_up_form=form, status=400)


@require_POST
@role_required(*SPEND_READER_ROLES)
def budget_reset_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    budget = get_in_workspace(Budget, workspace=request.workspace, pk=pk)
    form = ResetForm(request.POST)
    if form.is_valid():
        try:
            reset = budget_reset(
                budget=budget,
                actor=request.member,
                reason=form.cleaned_data["reason"],
                client=redis_client(),
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"Reset: a credit of {format_usd(reset.approved_usd or 0)} until the period ends.",
            )
            return redirect("manage-budget", pk=budget.pk)
    return budget_page(request, budget, reset_form=form, status=400)
