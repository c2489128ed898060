"""Usage events: the gateway appends one per call attempt to the Redis stream `alephant:usage`.

The event is appended before the client gets the end of its response, so anything a client was
answered for is in Redis (and later in the ledger, via `gateway/ledger_writer.py`) even if the
gateway is killed right after. One field, `e`, holds the event as JSON; the fields mirror
`billing.UsageRecord` (`cost_usd` as a decimal string, `created_at` as unix seconds).
"""

from __future__ import annotations

from typing import Any

import orjson

STREAM = "alephant:usage"
GROUP = "ledger"

FIELDS = (
    "request_id", "workspace_id", "gateway_key_id", "member_id", "department_id", "agent_id",
    "session_id", "session_path", "session_name", "properties", "provider", "model", "endpoint",
    "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cost_usd", "saved_usd",
    "cache_hit", "status_code", "error_type", "estimated", "stream", "latency_ms", "fingerprint",
    "created_at",
)


def encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def decode(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw)


class UsageQueue:
    def __init__(self, redis: Any, stream: str = STREAM) -> None:
        self.redis = redis
        self.stream = stream

    async def emit(self, event: dict[str, Any]) -> None:
        await self.redis.xadd(self.stream, {"e": encode(event)})

    async def emit_many(self, events: list[dict[str, Any]]) -> None:
        if len(events) == 1:
            await self.emit(events[0])
            return
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            pipe.xadd(self.stream, {"e": encode(event)})
        await pipe.execute()
