"""The stricter durability setting (`ALEPHANT_REDIS_WAIT_REPLICAS=n`, off at 0): a call's usage
events are in Redis before its answer completes (`accounting.account`); with this on they must
also be on `n` replicas, or they are written to the local spool too (`spool.py`), so a failover
right after the answer cannot lose the call's ledger row.

Redis' `WAIT` counts the replicas that acknowledged the *calling connection's* last write. The
settle goes over the shared pipelined connection (`resp.RespClient`), where a blocking WAIT
would hold up every other call's admit, so the wait goes over a connection of its own: it writes
one small key, then `WAIT n timeout`. The replication stream is ordered, so a replica that has
that write has every write the master made before it, this call's settle included.

Group commit: calls that finish while a round is in flight share the next round (one SET + WAIT
for all of them); an idle call pays one round trip plus the replicas' acknowledgement.
Duplicates are harmless: spooled events replay into the stream, and the ledger writer inserts
`ON CONFLICT (request_id) DO NOTHING`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import Any

from core.redisclients import topology
from gateway.hotpath.config import Config
from gateway.hotpath.resp import RespClient

logger = logging.getLogger("alephant.gateway")

MARK_TTL_MS = 60_000
REPLAY_MARK_TTL_MS = 86_400_000  # a day: a mark that lapsed only costs one push again


class ReplicaWait:
    """`confirm` returns once the events are on `replicas` replicas or in the spool."""

    def __init__(self, redis: Any, spool: Any, *, replicas: int, timeout_ms: int) -> None:
        # A connection of its own: a `RespClient` (one server), or redis-py's (Sentinel's master)
        self.redis = redis
        self.spool = spool
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        self.key = f"alephant:replwait:{os.uname().nodename}:{os.getpid()}"
        self._waiters: list[asyncio.Future] = []
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._short = False  # the last round fell short (log state changes, not every call)
        # The spool replay's mark: written after each replayed batch, so a master that holds
        # the latest mark holds every batch replayed before it (see `holds`).
        self.replay_key = f"alephant:replaymark:{os.uname().nodename}:{os.getpid()}"
        self.replay_token: bytes | None = None

    async def aclose(self) -> None:
        if isinstance(self.redis, RespClient):
            await self.redis.aclose()

    async def confirm(self, events: Sequence[bytes], *, request_id: str) -> bool:
        """True when `replicas` replicas acknowledged; otherwise the events are spooled."""
        if not events:
            return True
        if await self._acknowledged():
            return True
        try:
            await asyncio.to_thread(self.spool.append, list(events))
        except Exception as exc:
            logger.error(
                "gateway: spooling usage of %s (replicas short) failed: %r", request_id, exc
            )
        return False

    # The spool replay (`spool.replay_once`): spooled events are deleted only once replicas hold
    # them. A replay pushed to a master that then failed over to a replica that never had it
    # must be pushed again; a master that holds the latest replay mark holds everything pushed
    # before it (one master's writes are one ordered stream), so it need not be.

    def mark(self, pipe: Any) -> bytes:
        """Append the next replay mark to a replay pipeline; returns it (`marked` once run)."""
        token = os.urandom(8).hex().encode()
        pipe.set(self.replay_key, token, px=REPLAY_MARK_TTL_MS)
        return token

    def marked(self, token: bytes) -> None:
        self.replay_token = token

    async def holds(self, redis: Any) -> bool:
        """True when the current master holds the latest replay mark (so every push before it)."""
        if self.replay_token is None:
            return False
        return await redis.get(self.replay_key) == self.replay_token

    async def replay_acknowledged(self, redis: Any) -> bool:
        """The replicas acknowledged a write made after the replayed batches, on the master that
        still holds them (a failover between the push and the WAIT is caught by `holds`)."""
        return await self._acknowledged() and await self.holds(redis)

    async def _acknowledged(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._busy and (
            self._loop is not loop or (self._task is not None and self._task.done())
        ):
            self._busy, self._waiters, self._task = False, [], None  # a loop that went away
        if self._busy:  # a round is in flight: it may predate our write, so ride the next one
            future = loop.create_future()
            self._waiters.append(future)
            return await future
        # Nothing in flight: this caller makes the round itself (no task, no future).
        self._busy, self._loop, self._task = True, loop, None
        try:
            return await self._round()
        finally:
            if self._waiters:
                # Keep a reference: the loop holds tasks only weakly.
                self._task = loop.create_task(self._rounds())
            else:
                self._busy = False

    async def _rounds(self) -> None:
        # A round starts after its callers' writes were answered, so its mark comes after them.
        try:
            while self._waiters:
                waiters, self._waiters = self._waiters, []
                ok = await self._round()
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(ok)
        finally:
            self._busy = False

    async def _round(self) -> bool:
        mark = ("SET", self.key, "1", "PX", MARK_TTL_MS)
        wait = ("WAIT", self.replicas, self.timeout_ms)
        try:
            if isinstance(self.redis, RespClient):
                replies = await self.redis.execute_many([mark, wait])
            else:
                pipe = self.redis.pipeline(transaction=False)
                pipe.execute_command(*mark)
                pipe.execute_command(*wait)
                replies = await pipe.execute(raise_on_error=False)
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            acked = replies[1]
            ok = int(acked) >= self.replicas
        except Exception as exc:
            logger.warning("gateway: WAIT for %d replica(s) failed: %r", self.replicas, exc)
            return False
        if ok == self._short:
            self._short = not ok
            if ok:
                logger.warning("gateway: replicas acknowledge usage again")
            else:
                logger.warning(
                    "gateway: %s of %d replica(s) acknowledged within %d ms: spooling usage too",
                    acked,
                    self.replicas,
                    self.timeout_ms,
                )
        return ok


def replica_wait(config: Config, redis: Any, spool: Any) -> ReplicaWait | None:
    """The waiter when `ALEPHANT_REDIS_WAIT_REPLICAS` asks for one. Not on a Redis Cluster: a
    call's writes land on its workspace's shard, and one WAIT names one master."""
    if config.redis_wait_replicas <= 0:
        return None
    if topology() == "cluster":
        logger.warning("gateway: ALEPHANT_REDIS_WAIT_REPLICAS is ignored on a Redis Cluster")
        return None
    timeout_ms = config.redis_wait_timeout_ms
    client = redis
    if topology() == "single":
        # Its own lean connection: WAIT blocks the connection it is sent on.
        try:
            client = RespClient.from_url(
                config.redis_url, timeout_s=timeout_ms / 1000 + 5, connect_timeout_s=1
            )
        except ValueError:  # rediss:// or a socket path: redis-py's pool
            client = redis
    return ReplicaWait(client, spool, replicas=config.redis_wait_replicas, timeout_ms=timeout_ms)
