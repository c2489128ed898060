"""Push invalidation of the gateway's in-process snapshot cache (gateway/hotpath/invalidation.py)
against the real test Redis: an announcement drops the entry at once, a fetch that raced it is
not kept, and the subscriber outlives a killed connection and an unreachable Redis."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings

from core.rediskeys import SNAPSHOT_CHANNEL, key_snapshot
from gateway.hotpath.invalidation import Invalidations
from gateway.hotpath.snapshots import SnapshotCache
from tests.gateway.servers import free_port


async def _until(condition, timeout: float = 2.0) -> float:
    """Seconds until `await condition()` is truthy (fails the test after `timeout`)."""
    start = time.monotonic()
    while not await condition():
        assert time.monotonic() - start < timeout, "condition not met in time"
        await asyncio.sleep(0.002)
    return time.monotonic() - start


def _ident() -> str:
    return "test-" + uuid.uuid4().hex


def test_an_announcement_drops_the_cached_snapshot_at_once(redis_client):
    ident = _ident()
    key = key_snapshot(ident)

    async def run():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        cache = SnapshotCache(client, None, ttl=60)  # only the push can refresh it
        subscriber = Invalidations(settings.REDIS_URL, cache)
        subscriber.start()
        await asyncio.wait_for(subscriber.subscribed.wait(), 5)
        await client.set(key, orjson.dumps({"v": 1, "revoked": False}))
        assert (await cache.get("gk", ident))["revoked"] is False
        await client.set(key, orjson.dumps({"v": 1, "revoked": True}))
        assert (await cache.get("gk", ident))["revoked"] is False  # cached for 60 s...
        await client.publish(SNAPSHOT_CHANNEL, key)

        async def revoked():
            return (await cache.get("gk", ident))["revoked"]

        assert await _until(revoked) < 0.5  # ...until the announcement
        await subscriber.close()
        await client.delete(key)
        await client.aclose()

    asyncio.run(run())


def test_a_fetch_that_raced_an_invalidation_is_not_kept(redis_client):
    ident = _ident()
    loads: list[int] = []

    def slow_loader(kind, ident):
        loads.append(1)
        time.sleep(0.2)
        return {"v": 1, "load": len(loads)}

    async def run():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        cache = SnapshotCache(client, slow_loader, ttl=60)
        fetch = asyncio.create_task(cache.get("gk", ident))
        await asyncio.sleep(0.05)
        cache.forget_key(key_snapshot(ident))  # announced while the old value is being read
        assert (await fetch) == {"v": 1, "load": 1}  # its caller gets what was read...
        assert (await cache.get("gk", ident)) == {"v": 1, "load": 2}  # ...but it is not kept
        assert (await cache.get("gk", ident)) == {"v": 1, "load": 2}  # the fresh one is
        await client.aclose()

    asyncio.run(run())


def test_the_subscriber_comes_back_after_its_connection_is_killed(redis_client):
    ident = _ident()
    key = key_snapshot(ident)
    name = f"alephant-invalidations-{os.getpid()}"

    async def run():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        cache = SnapshotCache(client, None, ttl=60)
        subscriber = Invalidations(settings.REDIS_URL, cache)
        subscriber.start()
        await asyncio.wait_for(subscriber.subscribed.wait(), 5)
        await client.set(key, orjson.dumps({"v": 1, "n": 1}))
        assert (await cache.get("gk", ident))["n"] == 1
        # Kill only this process's subscriber connection (other test runs share the server).
        ids = [c["id"] for c in await client.client_list() if c.get("name") == name]
        assert ids
        await client.set(key, orjson.dumps({"v": 1, "n": 2}))
        for client_id in ids:
            await client.client_kill_filter(_id=client_id)
        # Whatever was announced while it was gone is unknown: it resubscribes and clears.
        await _until(lambda: _true(not subscriber.subscribed.is_set()), timeout=2)
        await asyncio.wait_for(subscriber.subscribed.wait(), 5)
        assert (await cache.get("gk", ident))["n"] == 2
        await client.set(key, orjson.dumps({"v": 1, "n": 3}))
        await client.publish(SNAPSHOT_CHANNEL, key)

        async def third():
            return (await cache.get("gk", ident))["n"] == 3

        await _until(third)
        assert subscriber._task is not None and not subscriber._task.done()
        await subscriber.close()
        await client.delete(key)
        await client.aclose()

    asyncio.run(run())


async def _true(value: bool) -> bool:
    return value


def test_the_subscriber_never_dies_while_redis_is_unreachable(caplog):
    async def run():
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        client = aioredis.Redis.from_url(url)
        subscriber = Invalidations(url, SnapshotCache(client, None, ttl=1))
        subscriber.start()
        await asyncio.sleep(0.8)  # several failed attempts (0.1, 0.2, 0.4 s backoff)
        assert subscriber._task is not None and not subscriber._task.done()
        assert not subscriber.subscribed.is_set()
        await subscriber.close()
        await client.aclose()

    with caplog.at_level("WARNING", logger="alephant.gateway"):
        asyncio.run(run())
    lost = [r for r in caplog.records if "invalidations lost" in r.getMessage()]
    assert len(lost) == 1  # one line per outage, not one per retry


@pytest.mark.django_db(transaction=True)
def test_revoking_a_key_announces_its_snapshot(cast, django_capture_on_commit_callbacks):
    from gateway.services.keys import gateway_key_create, gateway_key_revoke
    from workspaces.tenancy import workspace_scope

    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(SNAPSHOT_CHANNEL)
    with workspace_scope(cast.workspace.pk):
        key, _raw = gateway_key_create(workspace=cast.workspace, name="k", member=cast.member)
        gateway_key_revoke(key=key, actor=cast.admin)
    expected = key_snapshot(key.key_hash).encode()
    seen: list[bytes] = []
    deadline = time.monotonic() + 2
    while expected not in seen and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.1)
        if message:
            seen.append(message["data"])
    listener.close()
    assert expected in seen
