"""Key and workspace snapshots for the request path: `ttl` (1 s) in process, then Redis, then
the loader.

The loader (`gateway.loader.load_snapshot`, Django side) is injected by `gateway/asgi.py` and
runs in a thread on a Redis miss. Concurrent misses for one snapshot share a single load. Unknown
keys are remembered (as None) for the same `ttl`, so a flood of random keys costs one lookup per
`ttl` each.

Django announces every rewrite on a pub/sub channel; `invalidation.py` calls `forget_key` (or
`clear` after a reconnect), so a change is seen at once and `ttl` is only the backstop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from core.rediskeys import snapshot_key

Loader = Callable[[str, str], "dict | None"]

CACHE_TTL_S = 1.0
_MAX_ENTRIES = 50_000


class SnapshotCache:
    def __init__(self, redis: Any, loader: Loader | None, ttl: float = CACHE_TTL_S) -> None:
        self.redis = redis
        self.loader = loader
        self.ttl = ttl
        self._local: dict[str, tuple[float, dict | None]] = {}
        self._inflight: dict[str, asyncio.Future] = {}
        # Keys forgotten while a fetch was in flight: that fetch may have read the old value,
        # so its result is returned to its waiters but not kept.
        self._stale: set[str] = set()

    async def get(self, kind: str, ident: str) -> dict | None:
        key = snapshot_key(kind, ident)
        now = time.monotonic()
        hit = self._local.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._fetch(kind, ident, key)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(value)
        if key in self._stale:
            self._stale.discard(key)
            return value
        if len(self._local) >= _MAX_ENTRIES:
            self._local.clear()
        self._local[key] = (time.monotonic() + self.ttl, value)
        return value

    async def _fetch(self, kind: str, ident: str, key: str) -> dict | None:
        raw = await self.redis.get(key)
        if raw is not None:
            return orjson.loads(raw)
        if self.loader is None:
            return None
        return await asyncio.to_thread(self.loader, kind, ident)

    def forget(self, kind: str, ident: str) -> None:
        self.forget_key(snapshot_key(kind, ident))

    def forget_key(self, key: str) -> None:
        """Drop one snapshot (by its Redis key): the next call re-reads Redis."""
        self._local.pop(key, None)
        if key in self._inflight:
            self._stale.add(key)

    def clear(self) -> None:
        """Drop everything (invalidations may have been missed, e.g. while reconnecting)."""
        self._local.clear()
        self._stale.update(self._inflight)
