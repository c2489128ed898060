"""Resolve user-supplied ids inside the current workspace.

Missing and foreign objects get the same 404: RLS hides foreign rows, and the explicit
`workspace_id` filter keeps that true even for a connection that could see more.
"""

from __future__ import annotations

from typing import TypeVar

from django.db import models
from django.http import Http404

from workspaces.models import Workspace

M = TypeVar("M", bound=models.Model)


def get_in_workspace(
    queryset: type[M] | models.QuerySet[M], *, workspace: Workspace, pk: object
) -> M:
    qs = queryset._default_manager.all() if isinstance(queryset, type) else queryset
    try:
        return qs.get(workspace_id=workspace.pk, pk=int(str(pk)))
    except (ValueError, TypeError, qs.model.DoesNotExist) as exc:  # type: ignore[attr-defined]
        raise Http404("Not found.") from exc
