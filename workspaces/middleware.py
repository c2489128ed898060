"""Resolve the signed-in user's workspace and run the whole view inside its scope."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from workspaces import system
from workspaces.models import Member
from workspaces.tenancy import workspace_scope

SESSION_KEY = "alephant_workspace_id"
# DRF APIs resolve their workspace from the API token inside the view (workspaces/api_base.py);
# health checks touch no tenant data.
UNSCOPED_PREFIXES = ("/api/", "/healthz", "/readyz", "/static/")


class WorkspaceScopeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.workspace = None  # type: ignore[attr-defined]
        request.member = None  # type: ignore[attr-defined]
        request.memberships = []  # type: ignore[attr-defined]
        if request.path.startswith(UNSCOPED_PREFIXES) or not request.user.is_authenticated:
            return self.get_response(request)

        memberships = system.user_memberships(request.user.pk)
        request.memberships = memberships  # type: ignore[attr-defined]
        if not memberships:
            return self.get_response(request)
        wanted = request.session.get(SESSION_KEY)
        chosen = next((m for m in memberships if m.workspace_id == wanted), memberships[0])
        if wanted != chosen.workspace_id:
            request.session[SESSION_KEY] = chosen.workspace_id

        with workspace_scope(chosen.workspace_id):
            member = Member.objects.select_related("workspace", "department", "user").get(
                pk=chosen.member_id
            )
            request.member = member  # type: ignore[attr-defined]
            request.workspace = member.workspace  # type: ignore[attr-defined]
            response = self.get_response(request)
            # Streaming responses would read the DB after the transaction ends: render here.
            if getattr(response, "streaming", False):
                content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
                response.streaming_content = [content]  # type: ignore[attr-defined]
            return response
