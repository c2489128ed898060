"""Pages for budgets and alert channels.

Thin HTML over `billing.services` (validation, audit log, snapshots). Owners, admins and
finance read and change both. The burn bars come from the `budget_burns` template tag of the
spend pages (their rollups live in `attribution`, above billing).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from billing.forms import BudgetForm, ChannelForm, ResetForm, TopUpForm
from billing.models import AlertChannel, Budget, BudgetTopUp
from billing.models.budgets import Metric, Period
from billing.services.alerts import (
    alert_channel_create,
    alert_channel_delete,
    alert_channel_test,
)
from billing.services.budgets import budget_create, budget_delete, budget_update
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required
from workspaces.forms import apply_service_errors
from workspaces.models import SPEND_READER_ROLES

# --- budgets ---------------------------------------------------------------------------------


@role_required(*SPEND_READER_ROLES)
def budgets_manage(request: WorkspaceRequest) -> HttpResponse:
    form = BudgetForm(request.POST or None, workspace=request.workspace)
    if request.method == "POST" and form.is_valid():
        try:
            budget = budget_create(
                workspace=request.workspace, actor=request.member, **form.service_data()
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Budget saved: {budget.limit_display} per {budget.period}.")
            return redirect("manage-budgets")
    return render(
        request,
        "billing/manage/budgets.html",
        {"form": form},
        status=400 if form.errors else 200,
    )


@role_required(*SPEND_READER_ROLES)
def budget_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    budget = get_in_workspace(Budget, workspace=request.workspace, pk=pk)
    form = BudgetForm(
        request.POST or None, workspace=request.workspace, initial=BudgetForm.initial_for(budget)
    )
    if request.method == "POST" and form.is_valid():
        try:
            budget_update(budget=budget, actor=request.member, **form.service_data())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Budget updated.")
            return redirect("manage-budgets")
    return budget_page(request, budget, form=form, status=400 if form.errors else 200)


def budget_page(
    request: WorkspaceRequest,
    budget: Budget,
    *,
    form: BudgetForm | None = None,
    top_up_form: TopUpForm | None = None,
    reset_form: ResetForm | None = None,
    status: int = 200,
) -> HttpResponse:
    """A budget's page: its form, and for spend budgets a top-up (lifetime, with the balance
    history) or a reset (periodic). The top-up and reset views re-render it with their errors."""
    if form is None:
        form = BudgetForm(workspace=request.workspace, initial=BudgetForm.initial_for(budget))
    is_usd = budget.metric == Metric.USD
    return render(
        request,
        "billing/manage/budget_edit.html",
        {
            "form": form,
            "budget": budget,
            "can_top_up": is_usd and budget.period == Period.LIFETIME,
            "can_reset": is_usd and budget.period != Period.LIFETIME,
            "top_up_form": top_up_form or TopUpForm(),
            "reset_form": reset_form or ResetForm(),
            "top_ups": BudgetTopUp.objects.filter(
                workspace_id=request.workspace.pk, budget=budget
            ).select_related("created_by__user")[:200],
        },
        status=status,
    )


@require_POST
@role_required(*SPEND_READER_ROLES)
def budget_delete_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    budget = get_in_workspace(Budget, workspace=request.workspace, pk=pk)
    budget_delete(budget=budget, actor=request.member)
    messages.success(request, "Budget deleted.")
    return redirect("manage-budgets")


# --- alert channels --------------------------------------------------------------------------


@role_required(*SPEND_READER_ROLES)
def channels(request: WorkspaceRequest) -> HttpResponse:
    form = ChannelForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            created = alert_channel_create(
                workspace=request.workspace, actor=request.member, **form.cleaned_data
            )
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Channel {created.name} added.")
            form = ChannelForm()
    return render(
        request,
        "billing/manage/channels.html",
        {
            "form": form,
            "channels": AlertChannel.objects.filter(workspace=request.workspace),
            # A webhook's signing secret is shown once, on the page that created it.
            "new_secret": created.secret if created is not None and created.secret else None,
        },
        status=400 if form.errors else 200,
    )


@require_POST
@role_required(*SPEND_READER_ROLES)
def channel_test(request: WorkspaceRequest, pk: int) -> HttpResponse:
    channel = get_in_workspace(AlertChannel, workspace=request.workspace, pk=pk)
    try:
        _alert, error = alert_channel_test(channel=channel, actor=request.member)
    except ValidationError as exc:  # throttled
        messages.error(request, "; ".join(exc.messages))
        return redirect("manage-channels")
    if error:
        messages.error(request, f"Test to {channel.name} failed: {error}")
    else:
        messages.success(request, f"Test alert sent to {channel.name}.")
    return redirect("manage-channels")


@require_POST
@role_required(*SPEND_READER_ROLES)
def channel_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    channel = get_in_workspace(AlertChannel, workspace=request.workspace, pk=pk)
    alert_channel_delete(channel=channel, actor=request.member)
    messages.success(request, f"Channel {channel.name} removed.")
    return redirect("manage-channels")
