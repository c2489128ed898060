"""The overview and the workspace switcher / creation pages."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from workspaces.decorators import (
    WorkspaceRequest,
    workspace_required,
)
from workspaces.forms import (
    WorkspaceForm,
)
from workspaces.middleware import SESSION_KEY
from workspaces.selectors import (
    workspace_summary,
)
from workspaces.services.workspaces import workspace_create
from workspaces.views.common import add_service_errors

# --- Overview -------------------------------------------------------------------------------


@workspace_required
def home(request: WorkspaceRequest) -> HttpResponse:
    summary = workspace_summary(workspace=request.workspace)
    return render(request, "workspaces/home.html", {"summary": summary})


# --- Workspaces -----------------------------------------------------------------------------


@require_POST
@login_required
def workspace_switch(request: WorkspaceRequest) -> HttpResponse:
    """Only to a workspace the user belongs to; anything else is the same 404."""
    wanted = request.POST.get("workspace_id", "")
    membership = next(
        (m for m in request.memberships if str(m.workspace_id) == wanted.strip()), None
    )
    if membership is None:
        raise Http404("Not found.")
    request.session[SESSION_KEY] = membership.workspace_id
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("home")
    return redirect(next_url)


@login_required
@require_http_methods(["GET", "POST"])
def workspace_new(request: WorkspaceRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = workspace_create(
                name=form.cleaned_data["name"],
                owner=request.user,
                time_zone=form.cleaned_data["time_zone"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            request.session[SESSION_KEY] = workspace.pk
            messages.success(request, f"Workspace “{workspace.name}” created.")
            return redirect("home")
    status = 400 if request.method == "POST" else 200
    return render(request, "workspaces/workspace_new.html", {"form": form}, status=status)
