"""Pages for provider keys and gateway keys.

Thin HTML over `gateway.services.keys`, which validates, audit-logs and publishes snapshots.
Roles: owners and admins change provider keys; finance reads them; a member sees and issues
only their own keys (and their own agents').
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from alephant.replica import replica_reads_view
from attribution.key_usage import key_usage
from gateway.forms import GatewayKeyForm, KeyLimitsForm, ProviderKeyForm, RotateSecretForm
from gateway.models import GatewayKey, ProviderCredential
from gateway.services.keys import (
    gateway_key_create,
    gateway_key_revoke,
    gateway_key_update,
    provider_key_create,
    provider_key_delete,
    provider_key_update,
)
from gateway.services.provider_check import provider_key_test
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required, workspace_required
from workspaces.forms import apply_service_errors
from workspaces.models import MANAGER_ROLES, Agent, Member, Role
from workspaces.tables import Table, csv_response


def _require_manager(request: WorkspaceRequest) -> None:
    if not request.member.can_manage:
        raise PermissionDenied("Only owners and admins can change this.")


# --- provider keys ---------------------------------------------------------------------------
# Owners and admins only, as the API (ProviderKeyViewSet.default_roles): finance reads spend, not
# where the workspace's provider secrets point.


@role_required(*MANAGER_ROLES)
def provider_keys(request: WorkspaceRequest) -> HttpResponse:
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
        "gateway/manage/provider_keys.html",
        {
            "form": form,
            "credentials": credentials,
            "rotate_form": RotateSecretForm(),
            "can_change": request.member.can_manage,
        },
        status=400 if form.errors else 200,
    )


def _credential(request: WorkspaceRequest, pk: int):
    _require_manager(request)
    return get_in_workspace(ProviderCredential, workspace=request.workspace, pk=pk)


@require_POST
@role_required(*MANAGER_ROLES)
def provider_key_rotate(request: WorkspaceRequest, pk: int) -> HttpResponse:
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
@role_required(*MANAGER_ROLES)
def provider_key_test_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    credential = _credential(request, pk)
    try:
        result = provider_key_test(credential=credential, actor=request.member)
    except ValidationError as exc:  # throttled
        messages.error(request, "; ".join(exc.messages))
        return redirect("manage-provider-keys")
    level = messages.success if result.ok else messages.error
    level(request, f"{credential.name}: {result.message}")
    return redirect("manage-provider-keys")


@require_POST
@role_required(*MANAGER_ROLES)
def provider_key_delete_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    credential = _credential(request, pk)
    provider_key_delete(credential=credential, actor=request.member)
    messages.success(request, f"Deleted provider key {credential.name}.")
    return redirect("manage-provider-keys")


# --- gateway keys ----------------------------------------------------------------------------


def _visible_keys(request: WorkspaceRequest):
    qs = GatewayKey.objects.filter(workspace=request.workspace).select_related(
        "member__user", "agent"
    )
    if not request.member.can_read_spend:
        qs = qs.filter(member=request.member) | qs.filter(agent__owner=request.member)
    return qs


def _can_issue(member: Member) -> bool:
    return member.can_manage or member.role == Role.MEMBER


@workspace_required
@replica_reads_view
def gateway_keys(request: WorkspaceRequest) -> HttpResponse:
    member = request.member
    form = GatewayKeyForm(request.POST or None, workspace=request.workspace, actor=member)
    raw_key = None
    if request.method == "POST":
        if not _can_issue(member):
            raise PermissionDenied("Finance reads keys but does not issue them.")
        if form.is_valid():
            raw_key = _issue_key(request, form)
            if raw_key is not None:
                form = GatewayKeyForm(workspace=request.workspace, actor=member)
    if request.method == "GET" and request.GET.get("export") == "gateway-keys":
        return csv_response(_keys_table(request), filename="gateway-keys")
    keys = list(_visible_keys(request))
    usage = key_usage(workspace=request.workspace, now=timezone.now())
    for k in keys:
        k.usage = usage.get(k.pk)
    return render(
        request,
        "gateway/manage/gateway_keys.html",
        {
            "form": form,
            "keys": keys,
            "raw_key": raw_key,
            "can_issue": _can_issue(member),
        },
        status=400 if form.errors else 200,
    )


def _issue_key(request: WorkspaceRequest, form: GatewayKeyForm) -> str | None:
    """Create the key the valid form describes; the raw key (shown once), or None with the
    service's errors on the form."""
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
            actor=request.member,
            member=holder_member,
            agent=holder_agent,
            **data,
        )
    except ValidationError as exc:
        apply_service_errors(form, exc)
        return None
    messages.success(request, f"Key {key.name} created. Copy it now: it is shown only once.")
    return raw_key


def _keys_table(request: WorkspaceRequest) -> Table:
    headers = ["name", "prefix", "member", "agent", "status", "rpm", "tpm", "expires_at"]
    rows = [
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
    ]
    return Table("gateway-keys", [*headers, "created_at"], rows)


def _key(request: WorkspaceRequest, pk: int):
    key = get_in_workspace(_visible_keys(request), workspace=request.workspace, pk=pk)
    return key


@workspace_required
def gateway_key_edit(request: WorkspaceRequest, pk: int) -> HttpResponse:
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
        "gateway/manage/gateway_key_edit.html",
        {
            "form": form,
            "key": key,
            "can_issue": _can_issue(request.member),
        },
        status=400 if form.errors else 200,
    )


@require_POST
@workspace_required
def gateway_key_revoke_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    key = _key(request, pk)
    if not _can_issue(request.member):
        raise PermissionDenied("Finance reads keys but does not revoke them.")
    gateway_key_revoke(key=key, actor=request.member)
    messages.success(request, f"Revoked {key.name} ({key.prefix}). Calls with it now fail.")
    return redirect("manage-gateway-keys")
