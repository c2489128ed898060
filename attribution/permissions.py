"""Who may read which spend page.

Owners, admins and finance read everything; a member reads only their own usage and keys.
Pages resolve the workspace from the request (set by `WorkspaceScopeMiddleware`) and render
dates in the workspace's time zone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from workspaces.decorators import WorkspaceRequest


def workspace_page(*, readers_only: bool) -> Callable:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @functools.wraps(view)
        def wrapper(request: WorkspaceRequest, *args, **kwargs) -> HttpResponse:
            member = getattr(request, "member", None)
            if member is None:
                return redirect("workspace_new")
            if readers_only and not member.can_read_spend:
                raise PermissionDenied("Only owners, admins and finance can read this page.")
            timezone.activate(member.workspace.tz)
            try:
                return view(request, *args, **kwargs)
            finally:
                timezone.deactivate()

        return wrapper

    return decorator


def require_self_or_reader(request: WorkspaceRequest, *, member_id: int | None) -> None:
    member = request.member  # type: ignore[attr-defined]
    if member.can_read_spend:
        return
    if member_id is None or member_id != member.pk:
        raise PermissionDenied("Members see their own usage only.")
