"""The request path's lean Redis client (`gateway.hotpath.resp.RespClient`) against the real
Redis: the Enforcer and the usage queue on it, NOSCRIPT reload, pipelines with per-command
errors, replies matched in order under concurrency, reconnect after a dropped connection, and
fail-fast errors (connection refused, a server that never answers) that read as Redis down."""

from __future__ import annotations

import asyncio
import socket

import pytest
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.money import NANOS_PER_USD
from gateway.hotpath.admission import AdmitRequest
from gateway.hotpath.enforcer import Enforcer
from gateway.hotpath.resp import RespClient
from gateway.hotpath.usage import UsageQueue, decode


async def _zero(workspace_id, items):
    return [0 for _ in items]


def _request(request_id: str) -> AdmitRequest:
    return AdmitRequest(
        request_id, 77, 1, 2, 3, None, "openai", "gpt-4o", 10, 10, NANOS_PER_USD // 10, "", None
    )


WORKSPACE = {
    "workspace_id": 77,
    "time_zone": "UTC",
    "rpm_floor": 1000,
    "budgets": [
        {
            "id": 5,
            "scope_type": "member",
            "scope_id": 2,
            "metric": "usd",
            "limit": NANOS_PER_USD,
            "period": "month",
            "ladder": [50, 100],
            "throttle_at": None,
            "throttle_rpm": None,
            "hard_stop": True,
            "model": None,
        }
    ],
    "settings": {},
}


def test_enforcer_and_usage_queue_on_the_lean_client(redis_client):
    redis_client.script_flush()  # the first EVALSHA meets NOSCRIPT and loads the script

    async def main():
        client = RespClient.from_url(settings.REDIS_URL)
        enforcer = Enforcer(client, loader=_zero)
        admissions = await asyncio.gather(
            *(enforcer.admit(_request(f"rc-{i}"), WORKSPACE, {"rpm": None}) for i in range(12))
        )
        written = []
        for adm in admissions:
            if adm.allowed:
                written.append(
                    await enforcer.settle(
                        adm,
                        cost_nanos=NANOS_PER_USD // 10,
                        tokens=5,
                        usage=[b'{"request_id":"%s"}' % adm.handle.request_id.encode()],
                        usage_stream="alephant:usage:rc",
                    )
                )
        queue = UsageQueue(client, stream="alephant:usage:rc")
        await asyncio.gather(*(queue.emit({"request_id": f"q-{i}"}) for i in range(20)))
        pipe = client.pipeline(transaction=False)
        pipe.xadd("alephant:usage:rc", {"e": b"{}"})
        pipe.evalsha("0" * 40, 0)
        results = await pipe.execute(raise_on_error=False)
        await client.aclose()
        return admissions, written, results

    admissions, written, results = asyncio.run(main())
    allowed = [a for a in admissions if a.allowed]
    assert len(allowed) == 10  # the budget fits 10 (the counter was rebuilt once, concurrently)
    assert sorted(a.status for a in admissions if not a.allowed) == [402, 402]
    remaining = sorted(a.headers["Alephant-Budget-Remaining-USD"] for a in allowed)
    assert remaining[0] == "0.00" and len(set(remaining)) == 10
    assert written == [True] * 10
    events = [decode(f[b"e"]) for _id, f in redis_client.xrange("alephant:usage:rc")]
    assert [e["request_id"] for e in events[:10]] == [a.handle.request_id for a in allowed]
    assert sorted(e["request_id"] for e in events[10:30]) == sorted(f"q-{i}" for i in range(20))
    assert isinstance(results[0], bytes) and isinstance(results[1], ResponseError)
    steps = sorted(int(f[b"step"]) for _i, f in redis_client.xrange("alephant:alerts"))
    assert steps == [50, 100]


def test_reconnects_after_the_connection_drops(redis_client):
    async def main():
        client = RespClient.from_url(settings.REDIS_URL)
        own_id = await client.execute_command("CLIENT", "ID")
        redis_client.execute_command("CLIENT", "KILL", "ID", own_id)  # this connection only
        await asyncio.sleep(0.05)
        try:
            await client.execute_command("PING")
        except RedisConnectionError:
            pass  # the call in flight when the connection died fails; the next one reconnects
        pong = await client.execute_command("PING")
        with pytest.raises(ResponseError):
            await client.execute_command("NOSUCHCOMMAND")
        await client.aclose()
        return pong

    assert asyncio.run(main()) == b"PONG"


def test_connection_refused_and_a_silent_server_fail_fast():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts (the kernel does), never answers
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    dead_port = refused.getsockname()[1]
    refused.close()

    async def main():
        dead = RespClient("127.0.0.1", dead_port)
        with pytest.raises((RedisError, OSError)):
            await dead.execute_command("PING")
        mute = RespClient("127.0.0.1", silent.getsockname()[1], timeout_s=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(RedisTimeoutError):
            await mute.execute_command("PING")
        elapsed = loop.time() - started
        # The Enforcer reads either as "Redis down": a 503, never a hang or a 500.
        adm = await Enforcer(mute, loader=_zero).admit(_request("mute"), WORKSPACE, {})
        await mute.aclose()
        return elapsed, adm

    try:
        elapsed, adm = asyncio.run(main())
    finally:
        silent.close()
    assert elapsed < 2
    assert adm.allowed is False and adm.status == 503


async def _fake_redis(reply: bytes, *, split: int):
    """A server that answers any command with `reply`, written `split` bytes at a time."""

    async def handle(reader, writer):
        await reader.read(65536)
        for at in range(0, len(reply), split):
            writer.write(reply[at : at + split])
            await writer.drain()
            await asyncio.sleep(0)
        await reader.read(65536)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_replies_split_at_every_byte_read_the_same():
    """Nested arrays, nulls, integers, binary bulk strings and an error reply in one pipeline,
    arriving one byte per packet: the same values as from Redis in one piece."""
    reply = (
        b"*4\r\n:7\r\n$-1\r\n$4\r\n\x00\r\n\xff\r\n*2\r\n:-3\r\n+OK\r\n"
        b"-NOSCRIPT No matching script.\r\n-ERR boom\r\n"
    )

    async def main():
        server = await _fake_redis(reply, split=1)
        port = server.sockets[0].getsockname()[1]
        client = RespClient("127.0.0.1", port, timeout_s=5)
        results = await client.execute_many([("PING",), ("PING",), ("PING",)])
        await client.aclose()
        server.close()
        return results

    first, noscript, boom = asyncio.run(main())
    assert first == [7, None, b"\x00\r\n\xff", [-3, b"OK"]]
    assert isinstance(noscript, NoScriptError)
    assert isinstance(boom, ResponseError) and not isinstance(boom, NoScriptError)
    assert "boom" in str(boom)


def test_a_server_that_answers_garbage_reads_as_redis_down():
    async def main():
        server = await _fake_redis(b"HTTP/1.1 400 Bad Request\r\n\r\n", split=64)
        port = server.sockets[0].getsockname()[1]
        client = RespClient("127.0.0.1", port, timeout_s=5)
        try:
            with pytest.raises(RedisConnectionError):
                await client.execute_command("PING")
        finally:
            await client.aclose()
            server.close()

    asyncio.run(main())


def test_arguments_of_every_type_are_sent_as_redis_py_sends_them(redis_client):
    async def main():
        client = RespClient.from_url(settings.REDIS_URL)
        values = [b"raw\x00", bytearray(b"ba"), memoryview(b"mv"), "text", 7, True, 0.5, None]
        for i, value in enumerate(values):
            await client.execute_command("SET", f"resp-test:{i}", value)
        got = [await client.execute_command("GET", f"resp-test:{i}") for i in range(len(values))]
        await client.aclose()
        return got

    got = asyncio.run(main())
    assert got == [b"raw\x00", b"ba", b"mv", b"text", b"7", b"1", b"0.5", b"None"]
