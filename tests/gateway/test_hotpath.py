"""The gateway as raw ASGI (no server): snapshot cache, error shapes, body limit."""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
import pytest
import redis.asyncio as aioredis
from django.conf import settings

from core.keyhash import generate_key
from gateway.hotpath.app import Config, Gateway
from gateway.hotpath.snapshots import SnapshotCache


def test_snapshot_cache_single_flight_loader_then_redis(redis_client):
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()

    def loader(kind, ident):
        time.sleep(0.05)
        with lock:
            calls.append((kind, ident))
        return {"v": 1, "who": ident}

    async def run():
        client = aioredis.Redis.from_url(settings.REDIS_URL)
        cache = SnapshotCache(client, loader, ttl=0.2)
        results = await asyncio.gather(*(cache.get("gk", "abc") for _ in range(20)))
        assert all(r == {"v": 1, "who": "abc"} for r in results)
        assert calls == [("gk", "abc")]  # one load for twenty concurrent misses
        await client.set("alephant:gk:abc", orjson.dumps({"v": 1, "revoked": True}))
        assert (await cache.get("gk", "abc"))["who"] == "abc"  # still the cached copy
        await asyncio.sleep(0.25)
        assert (await cache.get("gk", "abc")) == {"v": 1, "revoked": True}  # re-read from Redis
        assert len(calls) == 1
        await client.aclose()

    asyncio.run(run())


async def _call(app, method, path, headers=(), body=b""):
    sent = []
    delivered = False

    async def receive():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers],
    }
    await app(scope, receive, send)
    start = sent[0]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), orjson.loads(payload)


def test_raw_asgi_error_shapes(redis_client):
    config = Config(key_hash_secret="s", redis_url=settings.REDIS_URL, max_body_bytes=64)
    raw_key, _prefix = generate_key()

    async def run():
        app = Gateway(config, loader=lambda kind, ident: None)
        try:
            status, headers, body = await _call(app, "POST", "/v1/chat/completions")
            assert status == 401 and body["error"]["code"] == "missing_api_key"
            assert headers[b"alephant-request-id"].startswith(b"req_")
            status, _h, body = await _call(
                app, "POST", "/v1/messages", [("x-api-key", raw_key)], b"{}"
            )
            assert status == 401 and body == {
                "type": "error",
                "error": {"type": "authentication_error", "message": "Invalid or revoked API key."},
            }
            status, _h, body = await _call(app, "GET", "/v1/nothing-here")
            assert status == 404 and body["error"]["code"] == "unknown_url"
        finally:
            await app.shutdown()

    asyncio.run(run())


@pytest.mark.django_db(transaction=True)
def test_raw_asgi_body_limit_and_bad_json(cast, redis_client):
    from tests.gateway.conftest import issue_key

    _obj, raw_key = issue_key(cast)
    config = Config(
        key_hash_secret=settings.ALEPHANT_KEY_HASH_SECRET,
        redis_url=settings.REDIS_URL,
        max_body_bytes=64,
    )

    async def run():
        app = Gateway(config, loader=lambda kind, ident: None)
        auth = [("authorization", f"Bearer {raw_key}")]
        try:
            status, _h, body = await _call(app, "POST", "/v1/chat/completions", auth, b"x" * 65)
            assert status == 400 and body["error"]["code"] == "request_too_large"
            status, _h, body = await _call(app, "POST", "/v1/chat/completions", auth, b"[1, 2]")
            assert status == 400 and body["error"]["code"] == "invalid_json"
            status, _h, body = await _call(
                app, "POST", "/v1/chat/completions", auth, b'{"messages": []}'
            )
            assert status == 400 and body["error"]["param"] == "model"
        finally:
            await app.shutdown()

    asyncio.run(run())
