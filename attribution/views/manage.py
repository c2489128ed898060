"""The index of the admin pages (keys live in `gateway`, budgets and channels in `billing`)."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render

from workspaces.decorators import WorkspaceRequest, workspace_required


@workspace_required
def manage_index(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "attribution/manage/index.html")
