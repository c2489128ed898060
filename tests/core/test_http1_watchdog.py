"""`core.http1`'s timeouts run on ONE watchdog timer per connection, pushed rather than re-armed
per read (issue 14): a stream whose reads each come in time is never cut however long it runs,
one that stalls after several reads fails with TimeoutError, `fetch`'s deadline holds while
bytes keep trickling in, and a watchdog left over from an earlier request neither kills the
idle pooled connection nor outlasts a shorter deadline on the next request."""

from __future__ import annotations

import asyncio

import pytest

from core.http1 import Http1Client
from tests.core.test_http1 import OK, OPEN, Server, run

HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def trickle(chunks: int, every: float, then_stall: bool) -> object:
    """A chunked answer, one chunk every `every` seconds; then the end, or silence."""

    async def handler(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(HEAD)
        for i in range(chunks):
            await asyncio.sleep(every)
            writer.write(b"1\r\n%d\r\n" % (i % 10))
            await writer.drain()
        if then_stall:
            await asyncio.sleep(5)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    return handler


async def _read_all(resp) -> list[bytes]:
    got = []
    async for chunk in resp:
        got.append(chunk)
    return got


def test_a_stream_whose_every_read_is_in_time_is_read_to_the_end():
    """8 reads, each within the read timeout, together far longer than it."""

    async def go():
        client = Http1Client(OPEN)
        async with Server(trickle(8, 0.1, then_stall=False)) as server:
            resp = await client.open(server.url(), b"", {}, read_timeout_s=0.4)
            got = await _read_all(resp)
            resp.close()
        return b"".join(got)

    assert run(go()) == b"01234567"


def test_a_stream_that_stalls_after_several_reads_times_out():
    """Reads 0.15 s apart with a 0.4 s read timeout: the watchdog fires during a later read
    than the one that armed it and must re-arm for that read, then catch the stall."""

    async def go():
        client = Http1Client(OPEN)
        async with Server(trickle(4, 0.15, then_stall=True)) as server:
            resp = await client.open(server.url(), b"", {}, read_timeout_s=0.4)
            got = []
            with pytest.raises(TimeoutError):
                async for chunk in resp:
                    got.append(chunk)
            resp.close()
        assert client._open == 0
        return b"".join(got)

    assert run(go()) == b"0123"


def test_a_reader_that_pauses_between_reads_is_not_cut():
    """The read timeout runs only while the reader waits, as before: a consumer that sits on a
    buffered chunk longer than it is not timed out."""

    async def go():
        client = Http1Client(OPEN)
        async with Server(trickle(3, 0.15, then_stall=False)) as server:
            resp = await client.open(server.url(), b"", {}, read_timeout_s=0.2)
            got = [await resp.__anext__()]
            await asyncio.sleep(0.4)  # past the read timeout, not waiting on the connection
            got += await _read_all(resp)
            resp.close()
        return b"".join(got)

    assert run(go()) == b"012"


def test_the_fetch_deadline_holds_while_bytes_keep_coming():
    async def go():
        client = Http1Client(OPEN)
        async with Server(trickle(60, 0.05, then_stall=False)) as server:
            with pytest.raises(TimeoutError):
                await client.fetch(server.url(), b"", {}, timeout_s=0.4)
        assert client._open == 0

    run(go())


def test_a_leftover_watchdog_spares_the_idle_connection_and_the_next_request():
    """The first fetch's watchdog fires while its connection idles in the pool: the connection
    stays usable. The next answer comes after that first deadline, within its own: it is read."""

    async def slow_second(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(OK)
        await writer.drain()
        await server.read_request(reader)
        await asyncio.sleep(0.5)
        writer.write(OK)
        await writer.drain()
        await asyncio.sleep(1)

    async def go():
        client = Http1Client(OPEN)
        async with Server(slow_second) as server:
            first = await client.fetch(server.url(), b"", {}, timeout_s=0.3)
            await asyncio.sleep(0.4)  # the first deadline passes while the connection idles
            second = await client.fetch(server.url(), b"", {}, timeout_s=5)
        return first.body, second.body, server.connections, client.connections_made

    assert run(go()) == (b'{"a":1}', b'{"a":1}', 1, 1)


def test_a_shorter_deadline_than_the_armed_watchdog_still_holds():
    """A stream armed the watchdog 30 s out; the pooled connection's next request has 0.2 s and
    gets no answer: it fails at its own deadline, not the watchdog's."""

    async def then_silent(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        writer.write(HEAD + b"2\r\nhi\r\n0\r\n\r\n")
        await writer.drain()
        await server.read_request(reader)
        await asyncio.sleep(30)  # silent for as long as the armed watchdog's time

    async def go():
        loop = asyncio.get_running_loop()
        client = Http1Client(OPEN)
        async with Server(then_silent) as server:
            resp = await client.open(server.url(), b"", {}, read_timeout_s=30)
            assert await _read_all(resp) == [b"hi"]
            started = loop.time()
            with pytest.raises(TimeoutError):
                await client.fetch(server.url(), b"", {}, timeout_s=0.2)
            elapsed = loop.time() - started
        assert client.connections_made == 1  # the second request went on the pooled one
        return elapsed

    assert run(go()) < 10
