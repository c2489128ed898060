"""The Django side of the gateway's cold path: the two loaders the hot path is given.

The hot path (`gateway.hotpath`) imports no Django; `gateway/asgi.py` imports this module
plainly, after `django.setup()`, and injects these callables into the app. Both run only on a
miss (a snapshot not in Redis, a budget counter not in Redis) and each in a worker thread, so
the event loop never waits on Postgres.
"""

from __future__ import annotations

import asyncio

from django.db import close_old_connections

from billing.services.counters import counters_from_ledger_in_thread
from gateway.snapshots import load_snapshot as build_snapshot


def load_snapshot(kind: str, ident: str) -> dict | None:
    """Snapshot loader (`SnapshotCache`), called in a worker thread on a Redis miss: build the
    snapshot from Postgres and write it to Redis."""
    try:
        return build_snapshot(kind, ident)  # type: ignore[arg-type]
    finally:
        # A pool thread must not keep a connection past Django's CONN_MAX_AGE rules.
        close_old_connections()


async def ledger_loader(workspace_id: int, items: list[dict]) -> list[int]:
    """Counter loader (`Enforcer`): sums the Postgres ledger in a worker thread when Redis lost
    a budget counter (new period, restart, flush), before the scope's next call is admitted."""
    return await asyncio.to_thread(
        counters_from_ledger_in_thread, workspace_id=workspace_id, items=items
    )
