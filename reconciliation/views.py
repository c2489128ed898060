"""The reconciliation page: a month at a glance (per day and provider), a day+model drill-down
(the provider's lines per key/project and the ledger requests behind the figure), CSV exports,
and the admin-key form (owners and admins)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_POST

from alephant.replica import replica_reads_view
from gateway.models import ProviderCredential
from reconciliation import selectors
from reconciliation.exports import comparison_table
from reconciliation.models import AdminCredential, AdminProvider
from reconciliation.params import month_of
from reconciliation.services.credentials import admin_credential_delete, admin_credential_set
from reconciliation.services.key_links import provider_key_link_set
from reconciliation.services.policy import reconciliation_policy_set
from reconciliation.services.pull import provider_costs_pull
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required
from workspaces.models import MANAGER_ROLES, SPEND_READER_ROLES
from workspaces.tables import render_with_export

REQUESTS_PER_PAGE = 50


def _month(request: WorkspaceRequest) -> tuple[dt.date, dt.date]:
    raw = request.GET.get("month", "")
    try:
        day = dt.date.fromisoformat(f"{raw}-01") if raw else None
    except ValueError:
        day = None
    return month_of(day or timezone.now().astimezone(dt.UTC).date())


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def month_page(request: WorkspaceRequest) -> HttpResponse:
    ws = request.workspace
    since, until = _month(request)
    rows = selectors.comparison(workspace=ws, since=since, until=until)
    days = selectors.per_day(rows)
    by_day = selectors.daily_breakdown(rows)
    for total in days:  # the day's models, for the drill-down links
        total.models = [r for r in by_day[total.day] if r.provider == total.provider]
    context = {
        "since": since,
        "until": until,
        "previous_month": (since - dt.timedelta(days=1)).strftime("%Y-%m"),
        "next_month": (until + dt.timedelta(days=1)).strftime("%Y-%m"),
        "days": days,
        "total": selectors.totals(rows),
        "policy": selectors.policy_for(workspace=ws),
        "credentials": selectors.admin_credentials(workspace=ws),
        "providers": AdminProvider.choices,
        "can_manage": request.member.role in MANAGER_ROLES,
        "key_links": selectors.key_links(workspace=ws),
    }
    tables = [comparison_table(rows, name="models"), comparison_table(days, name="days")]
    return render_with_export(
        request, "reconciliation/month.html", context, tables, slug=f"reconciliation-{since:%Y-%m}"
    )


@role_required(*SPEND_READER_ROLES)
@replica_reads_view
def day_page(request: WorkspaceRequest) -> HttpResponse:
    try:
        when = dt.date.fromisoformat(request.GET.get("day", ""))
    except ValueError:
        raise Http404("No such day.") from None
    provider = request.GET.get("provider", "")
    if provider not in AdminProvider.values:
        raise Http404("No such provider.")
    ws = request.workspace
    model = request.GET.get("model", "")[:200]  # empty: the provider's non-model charges
    rows = [
        r
        for r in selectors.comparison(workspace=ws, since=when, until=when, provider=provider)
        if r.model == model
    ]
    ledger = selectors.requests_behind(workspace=ws, provider=provider, day=when, model=model)
    page = Paginator(ledger, REQUESTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "day": when,
        "provider": provider,
        "model": model,
        "row": rows[0] if rows else None,
        "lines": selectors.provider_keys_behind(
            workspace=ws, provider=provider, day=when, model=model
        ),
        "requests": page,
        "keys": selectors.per_key(workspace=ws, provider=provider, day=when, model=model),
    }
    return render_with_export(request, "reconciliation/day.html", context, [], slug="recon-day")


@require_POST
@role_required(*MANAGER_ROLES)
def admin_key_save(request: WorkspaceRequest) -> HttpResponse:
    try:
        admin_credential_set(
            workspace=request.workspace,
            actor=request.member,
            provider=request.POST.get("provider", ""),
            secret=request.POST.get("secret", ""),
            base_url=request.POST.get("base_url", ""),
        )
    except ValidationError as exc:
        for text in exc.messages:
            messages.error(request, text)
    else:
        messages.success(request, "Admin key stored. It is used only to read the provider's bill.")
    return redirect("reconciliation")


@require_POST
@role_required(*MANAGER_ROLES)
def admin_key_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    credential = get_in_workspace(AdminCredential, workspace=request.workspace, pk=pk)
    admin_credential_delete(credential=credential, actor=request.member)
    messages.success(request, "Admin key removed.")
    return redirect("reconciliation")


@require_POST
@role_required(*MANAGER_ROLES)
def policy_save(request: WorkspaceRequest) -> HttpResponse:
    try:
        reconciliation_policy_set(
            workspace=request.workspace,
            actor=request.member,
            capture_threshold_pct=Decimal(request.POST.get("capture_threshold_pct", "")),
            drift_limit_usd=Decimal(request.POST.get("drift_limit_usd", "")),
            lookback_days=int(request.POST.get("lookback_days", "")),
        )
    except (ArithmeticError, ValueError):
        messages.error(request, "Thresholds are numbers.")
    except ValidationError as exc:
        for text in exc.messages:
            messages.error(request, text)
    else:
        messages.success(request, "Thresholds saved.")
    return redirect("reconciliation")


@require_POST
@role_required(*MANAGER_ROLES)
def pull_now(request: WorkspaceRequest) -> HttpResponse:
    for credential in selectors.admin_credentials(workspace=request.workspace):
        result = provider_costs_pull(workspace=request.workspace, provider=credential.provider)
        if result.error:
            messages.error(request, f"{credential.provider}: {result.error}")
    return redirect("reconciliation")


@require_POST
@role_required(*MANAGER_ROLES)
def key_link_save(request: WorkspaceRequest, pk: int) -> HttpResponse:
    credential = get_in_workspace(ProviderCredential, workspace=request.workspace, pk=pk)
    try:
        provider_key_link_set(
            workspace=request.workspace,
            actor=request.member,
            credential=credential,
            provider_key_id=request.POST.get("provider_key_id", ""),
        )
    except ValidationError as exc:
        for text in exc.messages:
            messages.error(request, text)
    else:
        messages.success(request, f"Provider key id saved for {credential.name}.")
    return redirect("reconciliation")
