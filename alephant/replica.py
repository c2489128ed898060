"""Mark a read-only page or API as allowed to read from the read replica (alephant/dbrouter.py).

    @role_required(*SPEND_READER_ROLES)
    @replica_reads_view                     # innermost: runs after the guard, in the scope
    def overview(request): ...

    class UsageViewSet(ReplicaReadsMixin, WorkspaceViewSet): ...

Only GET and HEAD are marked; any other method, and everything around the view (log-in,
session, workspace and member resolution, DRF authentication and permissions), reads from the
primary. Without DATABASE_REPLICA_URL both are no-ops.
"""

from __future__ import annotations

import functools
from contextlib import ExitStack
from typing import Any

from django.http import HttpRequest, HttpResponse

from alephant.dbrouter import replica_reads

READ_METHODS = frozenset({"GET", "HEAD"})


def replica_reads_view(view: Any) -> Any:
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in READ_METHODS:
            return view(request, *args, **kwargs)
        with replica_reads():
            response = view(request, *args, **kwargs)
            # A streamed export reads while it is consumed: consume it inside the block (the
            # workspace middleware would buffer it anyway), so the export reads the replica.
            if getattr(response, "streaming", False):
                content = b"".join(response.streaming_content)
                response.streaming_content = [content]
            return response

    return wrapper


class ReplicaReadsMixin:
    """For a `WorkspaceViewSet`: the handler of a GET/HEAD reads from the replica.

    The block opens after DRF's `initial()` (authentication, permissions, throttles: primary)
    and closes in `finalize_response()`, which DRF calls whatever the handler did; both run
    inside `WorkspaceViewSet.dispatch`'s workspace scope.
    """

    _replica_block: ExitStack | None = None

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if request.method in READ_METHODS:
            self._replica_block = ExitStack()
            self._replica_block.enter_context(replica_reads())

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        block, self._replica_block = self._replica_block, None
        if block is not None:
            block.close()
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
