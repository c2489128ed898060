"""The one page guard: a signed-in user with a workspace, in one of the allowed roles.

    @role_required(*MANAGER_ROLES)              # owner, admin: manage
    @role_required(*SPEND_READER_ROLES)         # owner, admin, finance: all spend and budgets
    @workspace_required                         # any member (members see their own usage)

Not signed in: redirect to log in. Signed in but in no workspace: redirect to create one.
Wrong role: 403. The view runs in the workspace's time zone (dates on every page read the
same). The workspace scope itself is set by `WorkspaceScopeMiddleware`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from workspaces.models import Member, Role, User, Workspace
from workspaces.system import Membership


class WorkspaceRequest(HttpRequest):
    """What a view behind `role_required` gets (set by `WorkspaceScopeMiddleware`)."""

    user: User
    workspace: Workspace
    member: Member
    memberships: list[Membership]


View = Callable[..., HttpResponse]


def role_required(*roles: str) -> Callable[[View], View]:
    allowed = frozenset(roles) if roles else frozenset(Role.values)
    unknown = allowed - set(Role.values)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorator(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            member = getattr(request, "member", None)
            if member is None:
                return redirect("workspace_new")
            if member.role not in allowed:
                raise PermissionDenied("Your role does not allow this.")
            timezone.activate(member.workspace.tz)
            try:
                return view(request, *args, **kwargs)
            finally:
                timezone.deactivate()

        wrapper.allowed_roles = allowed  # type: ignore[attr-defined]
        return wrapper

    return decorator


workspace_required = role_required()


def require_self_or_reader(request: WorkspaceRequest, *, member_id: int | None) -> None:
    """A member reads only their own usage; owners, admins and finance read everyone's."""
    member = request.member
    if member.can_read_spend:
        return
    if member_id is None or member_id != member.pk:
        raise PermissionDenied("Members see their own usage only.")
