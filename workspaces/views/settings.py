"""Admin pages under /settings/: workspace settings, the audit log, personal API tokens.

Same roles as the API: settings are read by every member and changed by owners/admins
(`workspace_update`); the audit log is for owners/admins (`AuditLogViewSet`); every member
has their own API tokens and owners/admins see and revoke everyone's (`APITokenViewSet`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required, workspace_required
from workspaces.forms import APITokenForm, WorkspaceForm
from workspaces.models import MANAGER_ROLES, APIToken, AuditLog
from workspaces.services.settings import workspace_update
from workspaces.services.tokens import api_token_create, api_token_revoke
from workspaces.views.common import add_service_errors

AUDIT_PAGE = 50


@workspace_required
def settings_page(request: WorkspaceRequest) -> HttpResponse:
    ws, member = request.workspace, request.member
    form = WorkspaceForm(
        request.POST if request.method == "POST" else None,
        initial={"name": ws.name, "time_zone": ws.time_zone},
    )
    if request.method == "POST":
        if not member.can_manage:
            raise PermissionDenied("Only owners and admins change workspace settings.")
        if form.is_valid():
            try:
                workspace_update(workspace=ws, actor=member, **form.cleaned_data)
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, "Workspace settings saved.")
                return redirect("workspace_settings")
    return render(
        request,
        "workspaces/settings.html",
        {"form": form, "can_edit": member.can_manage},
        status=400 if form.errors else 200,
    )


def _audit_filters(request: WorkspaceRequest) -> dict:
    """Query-string filters, each an exact match as the API's `filter_fields`."""
    filters: dict[str, str | int] = {}
    for name in ("action", "target_type", "target_id"):
        value = request.GET.get(name, "").strip()[:64]
        if value:
            filters[name] = value
    actor = request.GET.get("actor", "")
    if actor.isdigit() and len(actor) < 19:
        filters["actor_member_id"] = int(actor)
    return filters


@role_required(*MANAGER_ROLES)
def audit_page(request: WorkspaceRequest) -> HttpResponse:
    """Newest first, paged by id cursor (`before=`) so an old page costs one index range."""
    filters = _audit_filters(request)
    qs = AuditLog.objects.filter(workspace=request.workspace, **filters).order_by("-id")
    before = request.GET.get("before", "")
    if before.isdigit() and len(before) < 19:
        qs = qs.filter(id__lt=int(before))
    rows = list(qs[: AUDIT_PAGE + 1])
    has_next = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    query = {("actor" if k == "actor_member_id" else k): v for k, v in filters.items()}
    next_url = f"?{urlencode({**query, 'before': rows[-1].pk})}" if has_next else ""
    actions = (
        AuditLog.objects.filter(workspace=request.workspace)
        .order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )
    context = {
        "entries": rows,
        "filters": query,
        "actions": list(actions),
        "next_url": next_url,
        "first_url": f"?{urlencode(query)}" if before else "",
    }
    return render(request, "workspaces/audit.html", context)


def _visible_tokens(request: WorkspaceRequest):
    qs = APIToken.objects.filter(workspace=request.workspace).select_related("member__user")
    if request.member.can_manage:
        return qs.order_by("-created_at", "-id")
    return qs.filter(member=request.member).order_by("-created_at", "-id")


@workspace_required
def api_tokens_page(request: WorkspaceRequest) -> HttpResponse:
    form = APITokenForm(request.POST if request.method == "POST" else None)
    raw = None
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = api_token_create(member=request.member, **form.cleaned_data)
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Token {token.name} created. Copy it now: shown once.")
            form = APITokenForm()
    context = {"form": form, "tokens": _visible_tokens(request), "raw_token": raw}
    return render(
        request, "workspaces/api_tokens.html", context, status=400 if form.errors else 200
    )


@require_POST
@workspace_required
def api_token_revoke_view(request: WorkspaceRequest, pk: int) -> HttpResponse:
    # Someone else's token is a 404 for a non-manager, like the API's narrowed queryset.
    token = get_in_workspace(_visible_tokens(request), workspace=request.workspace, pk=pk)
    api_token_revoke(token=token, actor=request.member)
    messages.success(request, f"Token {token.name} revoked.")
    return redirect("api_tokens")
