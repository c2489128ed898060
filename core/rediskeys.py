"""Redis key and stream names shared by the gateway's hot path and the Django side.

Everything per workspace sits under one hash tag, so a workspace's counters, reservations and
rate windows live on one Redis Cluster slot and one script can touch them all.

Redis Cluster (`ALEPHANT_REDIS_CLUSTER=1`): the settle script also appends the usage event and
the admit/settle scripts the ladder alerts, so those streams must share the counters' slot. One
stream per workspace would leave the ledger writer blocking on thousands of streams; instead
there are `ALEPHANT_REDIS_SHARDS` (default 16) fixed shards: workspace `w` belongs to shard
`w % SHARDS`, its keys are `alephant:{s<k>}:w<id>:...`, and its events go to
`alephant:usage:{s<k>}` and `alephant:alerts:{s<k>}`, the same slot. The writer and the alert
drain consume every shard (a consumer group per shard stream). A single Redis (the default)
keeps the historical names: `alephant:{w<id>}`, one `alephant:usage`, one `alephant:alerts`.
The mode is read once from the environment at import: every process of one deployment must
agree on it (and on the shard count).
"""

from __future__ import annotations

import os

import orjson

CLUSTER = os.environ.get("ALEPHANT_REDIS_CLUSTER", "").strip().lower() in ("1", "true", "yes", "on")
SHARDS = max(1, int(os.environ.get("ALEPHANT_REDIS_SHARDS") or 16)) if CLUSTER else 1

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


def shard_of(workspace_id: int) -> int:
    return int(workspace_id) % SHARDS


def workspace_tag(workspace_id: int) -> str:
    if CLUSTER:
        return f"alephant:{{s{shard_of(workspace_id)}}}:w{int(workspace_id)}"
    return f"alephant:{{w{int(workspace_id)}}}"


def usage_stream(workspace_id: int) -> str:
    """The usage stream a workspace's events go to (its counters' slot in a cluster)."""
    return f"{USAGE_STREAM}:{{s{shard_of(workspace_id)}}}" if CLUSTER else USAGE_STREAM


def usage_streams() -> list[str]:
    """Every usage stream shard, for the consumers (the ledger writer, metrics)."""
    return [f"{USAGE_STREAM}:{{s{k}}}" for k in range(SHARDS)] if CLUSTER else [USAGE_STREAM]


def usage_stream_of_event(raw: bytes, default: str) -> str:
    """Where an encoded usage event goes: `default` on one Redis; on a cluster its workspace's
    shard, the slot the writer reads for that workspace (read from the event itself)."""
    if not CLUSTER:
        return default
    return usage_stream(int(orjson.loads(raw)["workspace_id"]))


def alerts_stream(workspace_id: int) -> str:
    return f"{ALERTS_STREAM}:{{s{shard_of(workspace_id)}}}" if CLUSTER else ALERTS_STREAM


def alerts_streams() -> list[str]:
    return [f"{ALERTS_STREAM}:{{s{k}}}" for k in range(SHARDS)] if CLUSTER else [ALERTS_STREAM]


def budget_counter(workspace_id: int, budget_id: int, period_key: str) -> str:
    """Hash with `spent`, `reserved`, `init` for one budget in one period."""
    return f"{workspace_tag(workspace_id)}:b:{int(budget_id)}:{period_key}"
