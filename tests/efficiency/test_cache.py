"""gateway/hotpath/cache.py on real Redis (the test's own logical db)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
import redis.asyncio as aioredis
from django.conf import settings

from gateway.hotpath import cache

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def run(coro):
    return asyncio.run(coro)


async def _with_redis(fn):
    client = aioredis.from_url(settings.REDIS_URL)
    try:
        return await fn(client)
    finally:
        await client.aclose()


def test_put_get_round_trip_per_workspace_with_ttl(redis_client):
    fp = cache.request_fingerprint("chat", BODY)

    async def scenario(r):
        assert await cache.get(r, 1, fp) is None
        assert await cache.put(
            r,
            1,
            fp,
            b'{"answer": 42}',
            ttl_s=60,
            cost_usd=Decimal("0.000123"),
            provider="openai",
            model="gpt-4o-mini",
            input_tokens=5,
            output_tokens=7,
        )
        entry = await cache.get_entry(r, 1, fp)
        assert entry.body == b'{"answer": 42}' and entry.cost_usd == Decimal("0.000123")
        assert (entry.input_tokens, entry.output_tokens) == (5, 7)
        assert await cache.get(r, 1, fp) == b'{"answer": 42}'
        assert await cache.get(r, 2, fp) is None  # never across workspaces
        return await r.ttl(cache.cache_key(1, fp))

    assert 0 < run(_with_redis(scenario)) <= 60


def test_oversized_or_zero_ttl_answers_are_not_stored(redis_client, monkeypatch):
    monkeypatch.setattr(cache, "MAX_ENTRY_BYTES", 10)

    async def scenario(r):
        assert not await cache.put(r, 1, "f", b"x" * 11, ttl_s=60)
        assert not await cache.put(r, 1, "g", b"x", ttl_s=0)
        return await r.keys("alephant:rc:*")

    assert run(_with_redis(scenario)) == []


def test_fingerprint_covers_model_messages_and_params_but_not_delivery():
    fp = cache.request_fingerprint
    base = fp("chat", BODY)
    assert fp("chat", dict(reversed(list(BODY.items())))) == base  # key order
    assert fp("chat", {**BODY, "stream": False, "user": "u-1", "metadata": {"a": 1}}) == base
    assert fp("chat", {**BODY, "temperature": 1}) != base
    assert fp("chat", {**BODY, "model": "gpt-4o"}) != base
    assert fp("chat", {**BODY, "messages": [{"role": "user", "content": "hi!"}]}) != base
    assert fp("completions", BODY) != base


@pytest.mark.parametrize(
    ("policy", "key_id", "agent_id", "header", "ttl"),
    [
        (None, 1, None, None, 0),
        (None, 1, None, b"on", cache.DEFAULT_TTL_S),
        ({"workspace": {"enabled": True, "ttl_s": 120}}, 1, None, None, 120),
        ({"workspace": {"enabled": True, "ttl_s": 120}}, 1, None, b"off", 0),
        ({"keys": {"1": {"enabled": True, "ttl_s": 30}}}, 1, None, None, 30),
        ({"keys": {"1": {"enabled": True, "ttl_s": 30}}}, 2, None, None, 0),
        (
            {"workspace": {"enabled": True, "ttl_s": 120}, "agents": {"9": {"enabled": False}}},
            1,
            9,
            None,
            0,
        ),
        ({"agents": {"9": {"enabled": True, "ttl_s": 45}}}, 1, 9, None, 45),
        ({"agents": {"9": {"enabled": False, "ttl_s": 45}}}, 1, 9, b"on", 45),
    ],
)
def test_opt_in_most_specific_wins(policy, key_id, agent_id, header, ttl):
    workspace = {"settings": {"response_cache": policy} if policy else {}}
    assert cache.ttl_for(workspace, {"key_id": key_id}, agent_id, header) == ttl


def test_hot_path_helpers_treat_a_dead_redis_as_a_miss():
    async def scenario():
        dead = aioredis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
        try:
            assert await cache.lookup(dead, 1, "f") is None
            await cache.store(dead, 1, "f", b"x", ttl_s=5)  # no exception
        finally:
            await dead.aclose()

    run(scenario())
