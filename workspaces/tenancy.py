"""Workspace scope: a context variable in Python and `app.workspace_id` in Postgres.

Fail closed twice: code that needs the scope calls `current_workspace_id()`, which raises when
no scope is set; underneath, every tenant table's RLS policy compares `workspace_id` with the
transaction-local setting, so a query outside a scope sees and writes nothing.

The setting is made with `set_config(..., true)` (SET LOCAL semantics) inside `atomic()`:
outside a transaction it would be lost at once (autocommit), and a session-level SET would leak
into the next request that reuses the pooled connection.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import connections, transaction

_current_workspace: ContextVar[int | None] = ContextVar("alephant_workspace", default=None)

F = TypeVar("F", bound=Callable[..., Any])


class WorkspaceScopeMissing(RuntimeError):
    """Tenant data was touched with no workspace scope set."""


def current_workspace_id() -> int:
    workspace_id = _current_workspace.get()
    if workspace_id is None:
        raise WorkspaceScopeMissing("no workspace scope is set")
    return workspace_id


def current_workspace_id_or_none() -> int | None:
    return _current_workspace.get()


def _set_db_scope(workspace_id: int | None, using: str) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT set_config('app.workspace_id', %s, true)",
            ["" if workspace_id is None else str(int(workspace_id))],
        )


@contextmanager
def workspace_scope(workspace_id: int, *, using: str = "default") -> Iterator[None]:
    """Run the block in one transaction (or savepoint) scoped to `workspace_id`.

    Nested scopes restore the outer value on exit: a local setting survives a released
    savepoint, so without the restore the inner workspace would leak into the outer block.
    """
    previous = _current_workspace.get()
    token = _current_workspace.set(int(workspace_id))
    nested = connections[using].in_atomic_block
    try:
        with transaction.atomic(using=using):
            _set_db_scope(workspace_id, using)
            yield
            # Only on a clean exit: on an exception the savepoint/transaction rolls back,
            # which reverts the setting by itself (and SQL in an aborted transaction fails).
            if nested:
                _set_db_scope(previous, using)
    finally:
        _current_workspace.reset(token)


def scoped_task(func: F) -> F:
    """Celery task decorator: the task takes `workspace_id=` and runs inside its scope."""

    @functools.wraps(func)
    def wrapper(*args: Any, workspace_id: int, **kwargs: Any) -> Any:
        with workspace_scope(workspace_id):
            return func(*args, workspace_id=workspace_id, **kwargs)

    return wrapper  # type: ignore[return-value]
