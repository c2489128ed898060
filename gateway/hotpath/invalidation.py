"""Push invalidation of the in-process snapshot cache: a revoked key stops working on every
gateway process within milliseconds, not after the cache TTL.

Django PUBLISHes a snapshot's Redis key on `core.rediskeys.SNAPSHOT_CHANNEL` right after it
rewrites it (`gateway/snapshots.py`). Each process runs one `Invalidations` task from its
`Runtime`: it subscribes on its own connection and drops the named entry from `SnapshotCache`.

The task never ends on its own and never takes the worker down: any error (Redis down, restarted,
flushed, a dropped connection) closes the subscription, waits (0.1 s doubling to 5 s) and
subscribes again. Messages published while it was not subscribed are lost, so after every
(re)subscribe it clears the whole cache; meanwhile the cache TTL
(`ALEPHANT_SNAPSHOT_CACHE_TTL`, 1 s) still bounds how stale a snapshot can be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.redisclients import pubsub_client
from core.rediskeys import SNAPSHOT_CHANNEL
from gateway.hotpath.snapshots import SnapshotCache

logger = logging.getLogger("alephant.gateway")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
# How long one read waits for a message before looping (and letting redis-py send its health
# check PING on an idle connection).
POLL_S = 1.0
HEALTH_CHECK_S = 10
CLOSE_WAIT_S = 2.0


class Invalidations:
    def __init__(self, redis_url: str, cache: SnapshotCache) -> None:
        self.redis_url = redis_url
        self.cache = cache
        self.subscribed = asyncio.Event()  # set while listening (tests wait on it)
        self.received = 0
        self._failing = False
        self._closing = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="alephant-snapshot-invalidations")

    async def close(self) -> None:
        task, self._task = self._task, None
        self._closing = True
        if task is not None:
            task.cancel()
            # Bounded: a cancellation that lands inside a redis-py read timeout can be turned
            # into a plain timeout and swallowed; `_closing` then ends the loop on its next turn.
            await asyncio.wait({task}, timeout=CLOSE_WAIT_S)

    async def _run(self) -> None:
        delay = FIRST_DELAY_S
        while not self._closing:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a background loop must outlive any error
                if not self._failing:  # one line per outage, not one per retry
                    logger.warning(
                        "gateway: snapshot invalidations lost (%s: %s); retrying, the cache "
                        "TTL still applies",
                        type(exc).__name__,
                        exc,
                    )
                self._failing = True
            if self.subscribed.is_set():
                self.subscribed.clear()
                delay = FIRST_DELAY_S  # it worked for a while: retry quickly
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)

    async def _listen(self) -> None:
        client = pubsub_client(
            self.redis_url,
            socket_connect_timeout=1,
            socket_keepalive=True,
            health_check_interval=HEALTH_CHECK_S,
            # No silent reconnect inside redis-py: it would re-subscribe without telling us that
            # messages were missed. An error comes here, and the resubscribe clears the cache.
            retry=Retry(NoBackoff(), 0),
            client_name=f"alephant-invalidations-{os.getpid()}",
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(SNAPSHOT_CHANNEL)
            # Whatever was announced before this subscription is unknown: start clean.
            self.cache.clear()
            self.subscribed.set()
            if self._failing:
                logger.warning("gateway: snapshot invalidations recovered")
                self._failing = False
            while not self._closing:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                if message is not None and message.get("type") == "message":
                    self._drop(message.get("data"))
        finally:
            with contextlib.suppress(Exception):  # best effort: the connection may be dead
                await pubsub.aclose()
            with contextlib.suppress(Exception):
                await client.aclose()

    def _drop(self, data: object) -> None:
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if isinstance(data, str):
            self.received += 1
            self.cache.forget_key(data)
