"""Usage events: the gateway appends one per call attempt to the Redis stream `alephant:usage`.

The event is appended before the client gets the end of its response, so anything a client was
answered for is in Redis (and later in the ledger, via `gateway/ledger_writer.py`) even if the
gateway is killed right after. One field, `e`, holds the event as JSON; the fields mirror
`billing.UsageRecord` (`cost_usd` as a decimal string, `created_at` as unix seconds).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import orjson

from core.rediskeys import CLUSTER, USAGE_GROUP, USAGE_STREAM, usage_stream
from core.rediskeys import usage_stream_of_event as stream_of

if TYPE_CHECKING:
    from gateway.hotpath.replication import ReplicaWait
    from gateway.hotpath.spool import Spool

logger = logging.getLogger("alephant.gateway")

STREAM = USAGE_STREAM
GROUP = USAGE_GROUP

FIELDS = (
    "request_id",
    "workspace_id",
    "gateway_key_id",
    "member_id",
    "department_id",
    "agent_id",
    "session_id",
    "session_path",
    "session_name",
    "properties",
    "provider",
    "provider_credential_id",
    "model",
    "endpoint",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "saved_usd",
    "cache_hit",
    "status_code",
    "error_type",
    "estimated",
    "stream",
    "latency_ms",
    "fingerprint",
    "created_at",
)


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw)


class UsageQueue:
    """Appends events; concurrent requests share pipelined XADDs.

    Each caller waits until the batch holding its events is in Redis (durability is per
    request), but while one batch is in flight the next requests' events accumulate, so at high
    concurrency one round trip carries many events instead of one each.
    """

    def __init__(self, redis: Any, stream: str = STREAM, *, spool: Spool | None = None) -> None:
        self.redis = redis
        self.stream = stream
        self.spool = spool
        self.replicas: ReplicaWait | None = None  # ALEPHANT_REDIS_WAIT_REPLICAS (runtime sets it)
        self._events: list[bytes] = []
        self._waiters: list[asyncio.Future] = []
        self._flushing = False
        self._task: asyncio.Task | None = None

    def stream_for(self, workspace_id: int) -> str:
        """The stream a workspace's events go to (its shard on a cluster)."""
        return usage_stream(workspace_id) if CLUSTER else self.stream

    async def emit(self, event: dict[str, Any]) -> None:
        await self.emit_many([event])

    async def emit_many(self, events: list[dict[str, Any]]) -> None:
        if events:
            await self.emit_encoded([encode(e) for e in events])

    async def emit_encoded(self, encoded: list[bytes]) -> None:
        """Like `emit_many`, for events already encoded with `encode`."""
        if not encoded:
            return
        if self._flushing:  # a round trip is in flight: ride the next batch
            future = asyncio.get_running_loop().create_future()
            self._events.extend(encoded)
            self._waiters.append(future)
            await future
            return
        # Nothing in flight: this caller makes the round trip itself (no task, no future).
        self._flushing = True
        try:
            await self._send(encoded)
        finally:
            if self._events:
                # Keep a reference: the loop holds tasks only weakly.
                self._task = asyncio.get_running_loop().create_task(self._flush())
            else:
                self._flushing = False

    async def confirm_replicated(self, encoded: list[bytes], *, request_id: str) -> None:
        """With ALEPHANT_REDIS_WAIT_REPLICAS: wait until replicas hold the events just written
        (settle or queue), else spool them too (`replication.py`). A no-op otherwise."""
        if encoded and self.replicas is not None:
            await self.replicas.confirm(encoded, request_id=request_id)

    async def emit_durable(self, encoded: list[bytes], *, request_id: str) -> bool:
        """Redis, or failing that the local spool (written and fsynced before this returns;
        `spool.replay_forever` pushes it to Redis later). Never raises: the provider has
        already charged, so the client is answered either way. False only when the events
        are on neither (no spool, or the disk failed too): logged at ERROR with the events
        themselves, so an operator can still recover them from the log."""
        try:
            await self.emit_encoded(encoded)
            return True
        except Exception as exc:
            redis_error = exc
        if self.spool is not None:
            try:
                await asyncio.to_thread(self.spool.append, encoded)
            except Exception as exc:
                logger.error("gateway: spooling usage of %s failed: %r", request_id, exc)
            else:
                logger.warning(
                    "gateway: usage event for %s spooled to disk (redis: %r)",
                    request_id,
                    redis_error,
                )
                return True
        logger.error(
            "gateway: usage event for %s failed, not recorded (redis: %r): %s",
            request_id,
            redis_error,
            b"\n".join(encoded).decode(errors="replace"),
        )
        return False

    async def _send(self, events: list[bytes]) -> None:
        if len(events) == 1:
            await self.redis.xadd(stream_of(events[0], self.stream), {"e": events[0]})
            return
        pipe = self.redis.pipeline(transaction=False)
        for raw in events:
            pipe.xadd(stream_of(raw, self.stream), {"e": raw})
        await pipe.execute()

    async def _flush(self) -> None:
        try:
            while self._events:
                events, waiters = self._events, self._waiters
                self._events, self._waiters = [], []
                try:
                    await self._send(events)
                except Exception as exc:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                else:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            self._flushing = False
