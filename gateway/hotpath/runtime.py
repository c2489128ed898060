"""What one gateway process holds for its lifetime: the shared upstream HTTP client, the Redis
clients, the snapshot cache, the Enforcer and the usage queue. Built at startup, closed at
shutdown (`app.Gateway` runs both from the ASGI lifespan or the first request)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.http1 import Http1Client
from core.redisclients import async_client, topology
from gateway.hotpath.admission import CounterLoader
from gateway.hotpath.auth import Credentials
from gateway.hotpath.config import Config
from gateway.hotpath.enforcer import Enforcer
from gateway.hotpath.invalidation import Invalidations
from gateway.hotpath.replication import replica_wait
from gateway.hotpath.resp import RespClient
from gateway.hotpath.snapshots import Loader, SnapshotCache
from gateway.hotpath.spool import Spool, drain, replay_forever
from gateway.hotpath.usage import STREAM, UsageQueue

EnforcerFactory = Callable[[Any], Enforcer]


class Runtime:
    def __init__(
        self,
        config: Config,
        *,
        loader: Loader | None,
        counter_loader: CounterLoader | None,
        enforcer_factory: EnforcerFactory | None,
    ) -> None:
        self.config = config
        self.loader = loader
        self.enforcer_factory = enforcer_factory or (
            lambda client: Enforcer.from_config(client, config, loader=counter_loader)
        )
        self.credentials = Credentials()
        self.upstream: Http1Client | None = None
        self.started = False

    async def start(self) -> None:
        config = self.config
        self.upstream = _upstream_client(config)
        # Blocking pool: a burst waits for a connection instead of failing ("too many
        # connections" would read as Redis down -> 503); one quick retry, not redis-py's default
        # backoff, so a dead Redis costs milliseconds before the 503.
        if topology() == "single":
            pool = aioredis.BlockingConnectionPool.from_url(
                config.redis_url,
                max_connections=256,
                timeout=5,
                socket_connect_timeout=1,
                socket_timeout=5,
                retry=Retry(NoBackoff(), 1),
            )
            self.redis = aioredis.Redis(connection_pool=pool)
        else:
            # A cluster (slot routing, MOVED/ASK, topology refresh) or the Sentinel's current
            # master: redis-py's clients, which follow a failover without a restart.
            self.redis = async_client(config.redis_url, socket_connect_timeout=1, socket_timeout=5)
        self.snapshots = SnapshotCache(self.redis, self.loader, ttl=config.snapshot_cache_ttl)
        # Django's announcements drop cached snapshots at once (a revocation in milliseconds);
        # the TTL above stays the backstop when the subscription is down.
        self.invalidations = Invalidations(config.redis_url, self.snapshots)
        self.invalidations.start()
        # The per-call commands (admit, settle + usage event) go over one lean pipelined
        # connection (`RespClient`): far less client CPU per command than redis-py's pool.
        try:
            if topology() != "single":
                raise ValueError("RespClient talks to one server")
            self.call_redis: Any = RespClient.from_url(
                config.redis_url, timeout_s=5, connect_timeout_s=1
            )
        except ValueError:  # rediss://, a socket path, a cluster or Sentinel: redis-py's client
            self.call_redis = self.redis
        self.enforcer: Enforcer = self.enforcer_factory(self.call_redis)
        # Usage events Redis would not take (it died mid-call) wait on local disk; the replay
        # task pushes them (and any a dead process left behind) once Redis answers again.
        self.spool = Spool(config.usage_spool_dir, redis_url=config.redis_url, stream=STREAM)
        self.usage = UsageQueue(self.call_redis, spool=self.spool)
        self.usage.replicas = replica_wait(config, self.redis, self.spool)
        self.replay = asyncio.get_running_loop().create_task(
            replay_forever(self.spool, self.redis, replicas=self.usage.replicas)
        )
        self.started = True

    async def close(self) -> None:
        if self.started:
            await self.invalidations.close()
        if self.started:
            self.replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.replay
            self.spool.close()
            await drain(self.spool, self.redis, replicas=self.usage.replicas)
            if self.usage.replicas is not None:
                await self.usage.replicas.aclose()
        if self.upstream is not None:
            await self.upstream.close()
        if self.started:
            if self.call_redis is not self.redis:
                await self.call_redis.aclose()
            await self.redis.aclose()
        self.started = False


def _upstream_client(config: Config) -> Http1Client:
    """The one upstream HTTP client of this process (`core.http1`: keep-alive pool, TLS).

    Every new upstream connection is vetted on the address it connects to (`core.egress`): the
    name is resolved once, every answer checked, and the socket connected to a checked address.
    Redirects are never followed (the 3xx reaches `forward.status_error`)."""
    return Http1Client(
        config.egress,
        connect_timeout_s=config.connect_timeout_s,
        limit=config.pool_size,
        keepalive_s=60,
    )
