"""Admin pages for provider keys, gateway keys, budgets and alert channels.

Thin HTML over the owning apps' services (`gateway.services.keys`, `billing.services.*`),
which validate, audit-log and publish snapshots. Roles: owners and admins change everything;
finance reads everything and changes only budgets and channels; a member sees and issues only
their own keys (and their own agents').
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from attribution.forms import (
    BudgetForm,
    ChannelForm,
    GatewayKeyForm,
    KeyLimitsForm,
    ProviderKeyForm,
    RotateSecretForm,
    apply_service_errors,
)
from attribution.permissions import workspace_page
from attribution.tables import Table, csv_response
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest
from workspaces.models import Agent, Member


def _require_manager(request: WorkspaceRequest) -> None:
    if not request.member.can_manage:
        raise PermissionDenied("Only owners and admins can change this.")


def _require_reader(request: WorkspaceRequest) -> None:
    if not request.member.can_read_spend:
        raise PermissionDenied("Only owners, admins and finance can see this.")


@workspace_page(readers_only=False)
def manage_index(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "attribution/manage/index.html")


# --- provider keys ---------------------------------------------------------------------------


@workspace_page(readers_only=True)
def provider_keys(request: WorkspaceRequest) -> HttpResponse:
    from gateway.models import ProviderCredential
    from gateway.services.keys import provider_key_create

    form = ProviderKeyForm(request.POST or None)
    if request.method == "POST":
        _require_manager(request)
        if form.is_valid():
            try:
                credential = provider_key_create(
                    workspace=request.workspace, actor=request.member, **form.cleaned_data
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(
                    request,
                    f"Provider key {credential.name} stored "
                    f"(…{credential.last4}). It will not be shown again.",
                )
                return redirect("manage-provider-keys")
    credentials = ProviderCredential.objects.filter(workspace=request.workspace)
    if request.method == "GET" and request.GET.get("export") == "provider-keys":
        return csv_response(
            Table(
                "provider-keys",
                ["name", "provider", "last4", "base_url", "created_at", "updated_at"],
                [
                    [c.name, c.provider, c.last4, c.base_url, c.created_at, c.updated_at]
                    for c in credentials
                ],
            ),
            filename="provider-keys",
        )
    return render(
        request,
        "attribution/manage/provider_keys.html",
        {
            "form": form,
            "credentials": credentials,
            "rotate_form": RotateSecretForm(),
            "can_change": request.member.can_manage,
        },
        status=400 if form.errors else 200,
    )


def _credential(request: WorkspaceRequest, pk: int):
    from gateway.models import ProviderCredential

    _require_manager(request)
    return get_in_workspace(ProviderCredential, workspace=request.workspace, pk=pk)


@require_POST
@workspace_page(readers_only=True)
def provider_key_rotate(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from gateway.services.keys import provider_key_update

    credential = _credential(request, pk)
    form = RotateSecretForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Paste the new secret to rotate the key.")
        return redirect("manage-provider-keys")
    try:
        provider_key_update(
            credential=credential, actor=request.member, secret=form.cleaned_data["secret"]
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, f"Rotated {credential.name}: now …{credential.last4}.")
    return redirect("manage-provider-keys")


@require_POST
@workspace_page(readers_only=True)
def provider_key_test_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from attribution.services.provider_check import provider_key_test

    credential = _credential(request, pk)
    result = provider_key_test(credential=credential, actor=request.member)
    level = messages.success if result.ok else messages.error
    level(request, f"{credential.name}: {result.message}")
    return redirect("manage-provider-keys")


@require_POST
@workspace_page(readers_only=True)
def provider_key_delete_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from gateway.services.keys import provider_key_delete

    credential = _credential(request, pk)
    provider_key_delete(credential=credential, actor=request.member)
    messages.success(request, f"Deleted provider key {credential.name}.")
    return redirect("manage-provider-keys")


# --- gateway keys ----------------------------------------------------------------------------


def _visible_keys(request: WorkspaceRequest):
    from gateway.models import GatewayKey

    qs = GatewayKey.objects.filter(workspace=request.workspace).select_related(
        "member__user", "agent"
    )
    if not request.member.can_read_spend:
        qs = qs.filter(member=request.member) | qs.filter(agent__owner=request.member)
    return qs


def _can_issue(member: Member) -> bool:
    return member.can_manage or member.role == "member"


@workspace_page(readers_only=False)
def gateway_keys(request: WorkspaceRequest) -> HttpResponse:
    from gateway.services.keys import gateway_key_create

    member = request.member
    form = GatewayKeyForm(request.POST or None, workspace=request.workspace, actor=member)
    raw_key = None
    if request.method == "POST":
        if not _can_issue(member):
            raise PermissionDenied("Finance reads keys but does not issue them.")
        if form.is_valid():
            data = dict(form.cleaned_data)
            kind, _, holder_id = data.pop("holder").partition(":")
            holder_member = holder_agent = None
            if kind == "member":
                holder_member = get_in_workspace(Member, workspace=request.workspace, pk=holder_id)
            else:
                holder_agent = get_in_workspace(Agent, workspace=request.workspace, pk=holder_id)
            try:
                key, raw_key = gateway_key_create(
                    workspace=request.workspace,
                    actor=member,
                    member=holder_member,
                    agent=holder_agent,
                    **data,
                )
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                form = GatewayKeyForm(workspace=request.workspace, actor=member)
                messages.success(
                    request, f"Key {key.name} created. Copy it now: it is shown only once."
                )
    if request.method == "GET" and request.GET.get("export") == "gateway-keys":
        return csv_response(
            Table(
                "gateway-keys",
                [
                    "name",
                    "prefix",
                    "member",
                    "agent",
                    "status",
                    "rpm",
                    "tpm",
                    "expires_at",
                    "created_at",
                ],
                [
                    [
                        k.name,
                        k.prefix,
                        k.member.user.email if k.member else "",
                        k.agent.slug if k.agent else "",
                        k.status,
                        k.rpm,
                        k.tpm,
                        k.expires_at,
                        k.created_at,
                    ]
                    for k in _visible_keys(request)
                ],
            ),
            filename="gateway-keys",
        )
    return render(
        request,
        "attribution/manage/gateway_keys.html",
        {
            "form": form,
            "keys": _visible_keys(request),
            "raw_key": raw_key,
            "can_issue": _can_issue(member),
        },
        status=400 if form.errors else 200,
    )


def _key(request: WorkspaceRequest, pk: int):
    key = get_in_workspace(_visible_keys(request), workspace=request.workspace, pk=pk)
    return key


@workspace_page(readers_only=False)
def gateway_key_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from gateway.services.keys import gateway_key_update

    key = _key(request, pk)
    initial = {
        "expires_at": key.expires_at,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "allowed_models": ", ".join(key.allowed_models or []),
    }
    form = KeyLimitsForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if not _can_issue(request.member):
            raise PermissionDenied("Finance reads keys but does not change them.")
        if form.is_valid():
            try:
                gateway_key_update(key=key, actor=request.member, **form.cleaned_data)
            except ValidationError as exc:
                apply_service_errors(form, exc)
            except PermissionDenied:
                raise
            else:
                messages.success(request, f"Limits of {key.name} saved.")
                return redirect("manage-gateway-keys")
    return render(
        request,
        "attribution/manage/gateway_key_edit.html",
        {
            "form": form,
            "key": key,
            "can_issue": _can_issue(request.member),
        },
        status=400 if form.errors else 200,
    )


@require_POST
@workspace_page(readers_only=False)
def gateway_key_revoke_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from gateway.services.keys import gateway_key_revoke

    key = _key(request, pk)
    if not _can_issue(request.member):
        raise PermissionDenied("Finance reads keys but does not revoke them.")
    gateway_key_revoke(key=key, actor=request.member)
    messages.success(request, f"Revoked {key.name} ({key.prefix}). Calls with it now fail.")
    return redirect("manage-gateway-keys")


# --- budgets ---------------------------------------------------------------------------------


@workspace_page(readers_only=True)
def budgets_manage(request: WorkspaceRequest) -> HttpResponse:
    from attribution.budget_burn import budget_burns
    from billing.services.budgets import budget_create

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
        "attribution/manage/budgets.html",
        {
            "form": form,
            "burns": budget_burns(workspace=request.workspace),
        },
        status=400 if form.errors else 200,
    )


@workspace_page(readers_only=True)
def budget_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from billing.models import Budget
    from billing.services.budgets import budget_update

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
    return render(
        request,
        "attribution/manage/budget_edit.html",
        {"form": form, "budget": budget},
        status=400 if form.errors else 200,
    )


@require_POST
@workspace_page(readers_only=True)
def budget_delete_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from billing.models import Budget
    from billing.services.budgets import budget_delete

    budget = get_in_workspace(Budget, workspace=request.workspace, pk=pk)
    budget_delete(budget=budget, actor=request.member)
    messages.success(request, "Budget deleted.")
    return redirect("manage-budgets")


# --- alert channels --------------------------------------------------------------------------


@workspace_page(readers_only=True)
def channels(request: WorkspaceRequest) -> HttpResponse:
    from billing.models import AlertChannel
    from billing.services.alerts import alert_channel_create

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
        "attribution/manage/channels.html",
        {
            "form": form,
            "channels": AlertChannel.objects.filter(workspace=request.workspace),
            # A webhook's signing secret is shown once, on the page that created it.
            "new_secret": created.secret if created is not None and created.secret else None,
        },
        status=400 if form.errors else 200,
    )


@require_POST
@workspace_page(readers_only=True)
def channel_test(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from billing.models import AlertChannel
    from billing.services.alerts import alert_channel_test

    channel = get_in_workspace(AlertChannel, workspace=request.workspace, pk=pk)
    _alert, error = alert_channel_test(channel=channel, actor=request.member)
    if error:
        messages.error(request, f"Test to {channel.name} failed: {error}")
    else:
        messages.success(request, f"Test alert sent to {channel.name}.")
    return redirect("manage-channels")


@require_POST
@workspace_page(readers_only=True)
def channel_delete(request: WorkspaceRequest, pk: int) -> HttpResponse:
    from billing.models import AlertChannel
    from billing.services.alerts import alert_channel_delete

    channel = get_in_workspace(AlertChannel, workspace=request.workspace, pk=pk)
    alert_channel_delete(channel=channel, actor=request.member)
    messages.success(request, f"Channel {channel.name} removed.")
    return redirect("manage-channels")
