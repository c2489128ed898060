"""Read replicas: dashboards, exports and the usage APIs read from `replica`, everything else
from the primary (`default`).

A read goes to the replica only inside `replica_reads()` (entered by `alephant.replica`'s view
decorator and DRF mixin, for GET/HEAD only) and only while that block has not written:

* every write goes to the primary, and the first one makes the rest of the block stick to the
  primary (ORM writes through `db_for_write`; raw SQL on the primary through an execute
  wrapper that treats anything but a plain SELECT as a write), so a block that wrote reads
  its own write;
* if the primary's transaction had already written when the first read would go to the
  replica (`pg_current_xact_id_if_assigned()`), the block stays on the primary;
* accounts, sessions and the user model always read from the primary (log-in and permission
  checks never see a lagging copy): only the tenant apps in `REPLICA_APPS` are routed.

RLS on the replica: the first routed read opens one read-only transaction on the replica and
sets `app.workspace_id` there with `set_config(..., true)` (it works on a hot standby), and
every later routed read re-sets it when the Python scope (`workspaces.tenancy`) changed, so the
replica always filters by the workspace the request runs in; no scope means no rows, as on the
primary. The transaction ends with the block.

Replica down: when the replica cannot be reached (the connection fails), the block reads from
the primary and the replica is left alone for `ALEPHANT_DB_REPLICA_RETRY_S` seconds, so a dead
replica costs one failed connect per process and retry interval, not one per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from workspaces.tenancy import current_workspace_id_or_none

REPLICA = "replica"
# Tenant data only; auth, sessions, allauth and content types stay on the primary.
REPLICA_APPS = frozenset(
    {"workspaces", "billing", "gateway", "attribution", "efficiency", "reconciliation"}
)
_READ_ONLY_PREFIXES = ("SELECT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
_UNSET = object()

logger = logging.getLogger(__name__)
_down_until = 0.0  # monotonic time before which this process does not try the replica


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def is_write(sql: str) -> bool:
    """Anything but a plain SELECT (or savepoint bookkeeping) counts as a write."""
    return not sql.lstrip()[:24].upper().startswith(_READ_ONLY_PREFIXES)


@dataclass
class _ReplicaBlock:
    sticky: bool = False  # wrote, or found a written transaction: primary from now on
    failed: bool = False  # the replica could not be reached: primary from now on
    stack: ExitStack | None = None  # the replica's open transaction
    workspace_id: object = _UNSET  # what `app.workspace_id` holds on the replica

    def watch(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not self.sticky and is_write(sql):
            self.sticky = True
        return execute(sql, params, many, context)

    def end(self, exc: BaseException | None) -> None:
        stack, self.stack = self.stack, None
        if stack is None:
            return
        if exc is None:
            stack.close()
        else:
            stack.__exit__(type(exc), exc, exc.__traceback__)


_block: ContextVar[_ReplicaBlock | None] = ContextVar("alephant_replica_block", default=None)


@contextmanager
def replica_reads() -> Iterator[None]:
    """Let tenant reads in this block go to the replica (a no-op without one, or nested)."""
    if not replica_configured() or _block.get() is not None:
        yield
        return
    block = _ReplicaBlock()
    token = _block.set(block)
    try:
        with connections[DEFAULT_DB_ALIAS].execute_wrapper(block.watch):
            yield
    except BaseException as exc:
        block.end(exc)
        raise
    else:
        block.end(None)
    finally:
        _block.reset(token)


def _primary_has_written() -> bool:
    primary = connections[DEFAULT_DB_ALIAS]
    if not primary.in_atomic_block:
        return False  # autocommit: every earlier write is committed and replicated in order
    with primary.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
        return bool(cursor.fetchone()[0])


def _open(block: _ReplicaBlock) -> bool:
    """Open the replica's transaction for this block; False (primary) if unreachable."""
    global _down_until
    if time.monotonic() < _down_until:
        return False
    conn = connections[REPLICA]
    stack = ExitStack()
    try:
        if not conn.in_atomic_block:
            conn.close_if_health_check_failed()  # a pooled connection to a replica that died
            conn.ensure_connection()
        stack.enter_context(transaction.atomic(using=REPLICA))
        _set_scope(block)
    except DatabaseError as exc:
        try:  # leaving the atomic block reconnects to restore autocommit: it may fail again
            stack.__exit__(type(exc), exc, exc.__traceback__)
        except DatabaseError:
            pass
        conn.close()
        _down_until = time.monotonic() + settings.ALEPHANT_DB_REPLICA_RETRY_S
        logger.warning("read replica unreachable, reading from the primary: %s", exc)
        return False
    block.stack = stack
    return True


def _set_scope(block: _ReplicaBlock) -> None:
    workspace_id = current_workspace_id_or_none()
    if workspace_id == block.workspace_id:
        return
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(
            "SELECT set_config('app.workspace_id', %s, true)",
            ["" if workspace_id is None else str(int(workspace_id))],
        )
    block.workspace_id = workspace_id


def _route_read(model: type) -> str:
    block = _block.get()
    if block is None or block.sticky or block.failed or not _replicable(model):
        return DEFAULT_DB_ALIAS
    if block.stack is None:
        if _primary_has_written():
            block.sticky = True
            return DEFAULT_DB_ALIAS
        if not _open(block):
            block.failed = True
            return DEFAULT_DB_ALIAS
    else:
        _set_scope(block)
    return REPLICA


def _replicable(model: type) -> bool:
    meta = model._meta  # type: ignore[attr-defined]
    return meta.app_label in REPLICA_APPS and meta.label != settings.AUTH_USER_MODEL


class ReplicaRouter:
    """Installed (DATABASE_ROUTERS) only when DATABASE_REPLICA_URL is set.

    Always names a database (never None): Django would otherwise fall back to the `instance`
    hint's database, and a row read from the replica would lazy-load its relations there
    outside any replica block.
    """

    def db_for_read(self, model: type, **hints: Any) -> str:
        return _route_read(model)

    def db_for_write(self, model: type, **hints: Any) -> str:
        block = _block.get()
        if block is not None:
            block.sticky = True
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replica is a copy of the primary: same rows, same ids

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == DEFAULT_DB_ALIAS
