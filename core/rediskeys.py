"""Redis key and stream names shared by the gateway's hot path and the Django side.

Everything per workspace sits under one hash tag, `alephant:{w<id>}`, so a workspace's counters,
reservations and rate windows live on one Redis Cluster slot and one script can touch them all.
"""

from __future__ import annotations

USAGE_STREAM = "alephant:usage"  # usage events, gateway -> ledger writer
USAGE_GROUP = "ledger"
USAGE_DEAD_STREAM = "alephant:usage:dead"
ALERTS_STREAM = "alephant:alerts"  # ladder crossings and loops -> billing.alerts_drain
RESPONSE_CACHE_PREFIX = "alephant:rc:"
# Pub/sub: Django publishes a snapshot's Redis key here each time it rewrites it (a revocation, a
# new budget); every gateway process drops its in-memory copy at once instead of waiting for
# its cache TTL. Channels are server-wide (not per db): a stray message only costs a re-read.
SNAPSHOT_CHANNEL = "alephant:snapshots"


def snapshot_key(kind: str, ident: str | int) -> str:
    """A cached snapshot: kind "gk" (gateway key, by hash) or "ws" (workspace, by id)."""
    return f"alephant:{kind}:{ident}"


def key_snapshot(key_hash: str) -> str:
    return snapshot_key("gk", key_hash)


def workspace_snapshot(workspace_id: int) -> str:
    return snapshot_key("ws", int(workspace_id))


def workspace_tag(workspace_id: int) -> str:
    return f"alephant:{{w{int(workspace_id)}}}"


def budget_counter(workspace_id: int, budget_id: int, period_key: str) -> str:
    """Hash with `spent`, `reserved`, `init` for one budget in one period."""
    return f"{workspace_tag(workspace_id)}:b:{int(budget_id)}:{period_key}"
