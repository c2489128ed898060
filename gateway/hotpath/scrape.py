"""`GET /metrics`: the per-call series every worker wrote (`telemetry.py`), plus gauges computed
at scrape time from Redis: usage-queue depth, ledger lag and every budget's used, reserved,
limit and remaining.

The gauges cost the request path nothing: nothing is counted per call, Redis already holds the
truth (the admission counters), and a scrape reads it in two pipelined round trips, bounded to
`MAX_BUDGET_WORKSPACES` workspace snapshots. Any worker answers the same (they all read the same
Redis). Shared by the gateway and the Django app's `/metrics`.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from core.periods import PeriodCache
from core.rediskeys import USAGE_GROUP, budget_counter, usage_streams
from gateway.hotpath.budgets import MONEY, REQUEST_COST, RPM

MAX_BUDGET_WORKSPACES = 1000
_NANOS = 1_000_000_000
_periods = PeriodCache()


def authorized(token: str, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """No token configured: open (bind /metrics to a private network). Else a bearer token,
    compared in constant time."""
    if not token:
        return True
    for name, value in headers:
        if name == b"authorization":
            return hmac.compare_digest(value, b"Bearer " + token.encode())
    return False


def process_series(registry: CollectorRegistry | None) -> bytes:
    """The call series: summed over every worker's files in multiprocess mode, else this
    process' registry."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        merged = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(merged, path=directory)
        return generate_latest(merged)
    return generate_latest(registry) if registry is not None else b""


class _Static:
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


async def redis_series(redis: Any, *, per_workspace: bool) -> bytes:
    """Queue and budget gauges read from Redis now (the async client of the caller)."""
    families = await _queue_families(redis)
    families += await _budget_families(redis, per_workspace=per_workspace)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Static(families))
    return generate_latest(registry)


async def _queue_families(redis: Any) -> list[GaugeMetricFamily]:
    depth = GaugeMetricFamily(
        "alephant_usage_queue_length", "Usage events in the Redis stream (not yet trimmed)."
    )
    lag = GaugeMetricFamily(
        "alephant_ledger_lag_events",
        "Usage events the ledger writer has not yet committed (undelivered + unacknowledged).",
    )
    lag_s = GaugeMetricFamily(
        "alephant_ledger_lag_seconds", "Age of the oldest event the ledger writer has not read."
    )
    length, behind, oldest = 0, 0, 0.0
    for stream in usage_streams():  # one on a single Redis, every shard on a cluster
        shard_length, shard_behind, shard_oldest = await _stream_lag(redis, stream)
        length, behind = length + shard_length, behind + shard_behind
        oldest = max(oldest, shard_oldest)
    depth.add_metric([], length)
    lag.add_metric([], behind)
    lag_s.add_metric([], oldest)
    return [depth, lag, lag_s]


async def _stream_lag(redis: Any, stream: str) -> tuple[int, int, float]:
    """(length, events not yet committed, age of the oldest unread event) of one stream."""
    length = await redis.xlen(stream)
    behind, oldest = length, 0.0
    groups = await redis.xinfo_groups(stream) if length else []
    for group in groups:
        name = group.get("name")
        if (name.decode() if isinstance(name, bytes) else name) != USAGE_GROUP:
            continue
        behind = int(group.get("lag") or 0) + int(group.get("pending") or 0)
        last = group.get("last-delivered-id") or b"0-0"
        last = last.decode() if isinstance(last, bytes) else last
        nxt = await redis.xrange(stream, min="(" + last, count=1)
        if nxt:
            entry_id = nxt[0][0]
            entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            oldest = max(0.0, time.time() - int(entry_id.split("-")[0]) / 1000)
    return length, behind, oldest


async def _snapshots(redis: Any) -> list[dict]:
    keys: list[bytes] = []
    async for key in redis.scan_iter(match="alephant:ws:*", count=500):
        keys.append(key)
        if len(keys) >= MAX_BUDGET_WORKSPACES:
            break
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
        raws = await pipe.execute()
    found = [orjson.loads(raw) for raw in raws if raw]
    return [ws for ws in found if isinstance(ws, dict) and "workspace_id" in ws]


async def _budget_families(redis: Any, *, per_workspace: bool) -> list[GaugeMetricFamily]:
    names = ("used", "reserved", "limit", "remaining")
    labels = ["workspace"] if per_workspace else []
    labels += ["budget_id", "scope_type", "period", "unit"]
    families = {
        n: GaugeMetricFamily(
            f"alephant_budget_{n}", f"Budget {n} in the current period.", labels=labels
        )
        for n in names
    }
    rows: list[tuple[list[str], int, str]] = []
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        for ws in await _snapshots(redis):
            zone = ws.get("time_zone") or "UTC"
            for budget in ws.get("budgets") or ():
                metric = budget.get("metric", MONEY)
                if metric in (REQUEST_COST, RPM):
                    continue  # no period counter: a per-call cap, a rate window
                pkey, _start, _end = _periods.get(budget["period"], zone, now)
                wid = ws["workspace_id"]
                pipe.hmget(budget_counter(wid, budget["id"], pkey), "spent", "reserved")
                label = [str(wid)] if per_workspace else []
                unit = "usd" if metric == MONEY else metric
                label += [str(budget["id"]), budget["scope_type"], budget["period"], unit]
                rows.append((label, int(budget["limit"]), metric))
        counters = await pipe.execute() if rows else []
    for (label, limit, metric), (spent, reserved) in zip(rows, counters, strict=True):
        scale = _NANOS if metric == MONEY else 1
        used, held = int(spent or 0), int(reserved or 0)
        values = (used, held, limit, max(0, limit - used - held))
        for name, value in zip(names, values, strict=True):
            families[name].add_metric(label, value / scale)
    return list(families.values())


async def render(redis: Any, registry: CollectorRegistry | None, *, per_workspace: bool) -> bytes:
    return process_series(registry) + await redis_series(redis, per_workspace=per_workspace)


CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()
