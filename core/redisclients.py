"""Redis clients for the shared state, in the deployment's topology: one server (the default),
a Redis Cluster (`ALEPHANT_REDIS_CLUSTER=1`, `REDIS_URL` names any seed node) or a Sentinel set
(`REDIS_SENTINELS=host:port,...` + `REDIS_SENTINEL_MASTER=name`; `REDIS_URL` then only gives the
password and db). Every long-lived process (gateway, ledger writer, alert drain, Django) builds
its clients here, so all of them follow a failover without a restart: the cluster client
re-reads the slot map on MOVED / a dead node, the Sentinel client asks the sentinels for the
current master on every reconnect.

Celery's broker (`CELERY_BROKER_URL`) is not built here: it cannot be a cluster (README).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlparse

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException
from redis.sentinel import Sentinel

from core.rediskeys import CLUSTER

# Options only a single-server pool knows; a cluster or sentinel client builds its own pools.
_POOL_ONLY = ("max_connections", "timeout", "connection_pool")


class _ClusterPipeline:
    """What the hot path pipelines (EVALSHA, XADD), which redis-py's cluster pipeline refuses:
    the commands are sent concurrently, each to its slot's master (one round trip per node in
    flight at once, not one after another); results in order, errors as values or raised."""

    def __init__(self, client: _Cluster) -> None:
        self.client = client
        self.calls: list[Callable[[], Awaitable[Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., _ClusterPipeline]:
        method = getattr(self.client, name)

        def queue(*args: Any, **kwargs: Any) -> _ClusterPipeline:
            self.calls.append(lambda: method(*args, **kwargs))
            return self

        return queue

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        calls, self.calls = self.calls, []
        results = await asyncio.gather(*(call() for call in calls), return_exceptions=True)
        if raise_on_error:
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return results


class _Cluster(AsyncRedisCluster):
    """redis-py raises `RedisClusterException` (not a `RedisError`) while the slot map has a
    hole (a master just died, no replica promoted yet): callers treat that as Redis down (503,
    spool), like any other connection error, so it is re-raised as one."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise RedisConnectionError(f"redis cluster: {exc}") from exc

    def pipeline(  # type: ignore[override]  # the hot path's subset, not redis-py's pipeline
        self, transaction: Any = None, shard_hint: Any = None
    ) -> _ClusterPipeline:
        if shard_hint or transaction:
            raise RedisClusterException("cluster pipelines are not transactions")
        return _ClusterPipeline(self)


def sentinels() -> list[tuple[str, int]]:
    """`REDIS_SENTINELS` as (host, port) pairs; empty when Sentinel is not used."""
    out = []
    for item in os.environ.get("REDIS_SENTINELS", "").split(","):
        item = item.strip()
        if item:
            host, _, port = item.rpartition(":")
            out.append((host or "127.0.0.1", int(port or 26379)))
    return out


def topology() -> str:
    if CLUSTER:
        return "cluster"
    return "sentinel" if sentinels() else "single"


def _url_auth(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    path = (parsed.path or "/").strip("/")
    return {
        "db": int(path) if path else 0,
        "username": unquote(parsed.username) if parsed.username else None,
        "password": unquote(parsed.password) if parsed.password else None,
    }


def _cluster_url(url: str) -> str:
    """A cluster has only db 0: a db number in `REDIS_URL` (test settings add one) is dropped."""
    return urlparse(url)._replace(path="").geturl()


def pubsub_client(url: str, **kwargs: Any) -> aioredis.Redis:
    """A client to SUBSCRIBE with: on a cluster the seed node (PUBLISH reaches every node; no
    db), with Sentinel the current master (found again on every reconnect), else `url`."""
    if topology() == "sentinel":
        return async_client(url, **kwargs)
    return aioredis.Redis.from_url(_cluster_url(url) if CLUSTER else url, **kwargs)


def _sentinel_master_name() -> str:
    return os.environ.get("REDIS_SENTINEL_MASTER") or "alephant"


def sync_client(url: str, **kwargs: Any) -> Any:
    """A blocking client (`redis.Redis` API) for `url` in the configured topology."""
    kind = topology()
    if kind == "single":
        return redis.Redis.from_url(url, **kwargs)
    options = {k: v for k, v in kwargs.items() if k not in _POOL_ONLY}
    if kind == "cluster":
        return RedisCluster.from_url(_cluster_url(url), **options)
    auth = _url_auth(url)
    sentinel = Sentinel(
        sentinels(), socket_timeout=options.get("socket_timeout") or 1, socket_connect_timeout=1
    )
    return sentinel.master_for(_sentinel_master_name(), **auth, **options)


def async_client(url: str, **kwargs: Any) -> Any:
    """An asyncio client (`redis.asyncio.Redis` API) for `url` in the configured topology."""
    kind = topology()
    if kind == "single":
        return aioredis.Redis.from_url(url, **kwargs)
    options = {k: v for k, v in kwargs.items() if k not in _POOL_ONLY}
    if kind == "cluster":
        return _Cluster.from_url(_cluster_url(url), **options)
    auth = _url_auth(url)
    sentinel = AsyncSentinel(
        sentinels(), socket_timeout=options.get("socket_timeout") or 1, socket_connect_timeout=1
    )
    return sentinel.master_for(_sentinel_master_name(), **auth, **options)
