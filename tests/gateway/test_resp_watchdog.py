"""`RespClient`'s answer timeout runs on ONE watchdog timer per connection, not a timer per
command (issue 14): against fake servers, a command that gets no answer still fails with
redis-py's TimeoutError and drops the connection (the next call reconnects), everything queued
behind it fails with it, and answers that each come in time are never cut by a watchdog armed
for an earlier command."""

from __future__ import annotations

import asyncio

import hiredis
import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.hotpath.resp import RespClient


async def _server(answer_first: int, delay: float = 0.0):
    """Answers `+PONG` to the first `answer_first` commands on each connection, each after
    `delay` seconds, then stays silent. Counts connections."""
    connections = []

    async def handle(reader, writer):
        connections.append(writer)
        parser, answered = hiredis.Reader(), 0
        while data := await reader.read(65536):
            parser.feed(data)
            while parser.gets() is not False:
                if answered < answer_first:
                    answered += 1
                    await asyncio.sleep(delay)
                    writer.write(b"+PONG\r\n")
                    await writer.drain()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


def test_a_server_that_answers_once_then_goes_silent_times_out_and_reconnects():
    async def main():
        server, port, connections = await _server(answer_first=1)
        client = RespClient("127.0.0.1", port, timeout_s=0.3)
        first = await client.execute_command("PING")
        await asyncio.sleep(0.15)  # the watchdog armed for the first fires while the next waits
        with pytest.raises(RedisTimeoutError):
            # (a hang guard only: a watchdog that doesn't re-arm would leave this waiting)
            await asyncio.wait_for(client.execute_command("PING"), 5)
        dropped = client._proto.closed
        again = await client.execute_command("PING")  # a new connection, answered once
        await client.aclose()
        server.close()
        return first, dropped, again, len(connections)

    assert asyncio.run(main()) == (b"PONG", True, b"PONG", 2)


def test_everything_queued_behind_an_unanswered_command_fails_with_it():
    async def main():
        server, port, _connections = await _server(answer_first=2)
        client = RespClient("127.0.0.1", port, timeout_s=0.3)
        await client.execute_command("PING")
        results = await asyncio.gather(
            client.execute_command("PING"),
            client.execute_many([("PING",), ("PING",)]),
            client.execute_command("PING"),
            return_exceptions=True,
        )
        await client.aclose()
        server.close()
        return results

    results = asyncio.run(main())
    assert results[0] == b"PONG"
    assert [type(r) for r in results[1:]] == [RedisTimeoutError, RedisTimeoutError]


def test_answers_that_each_come_in_time_are_never_cut():
    """Each answer takes 0.2 s of a 0.5 s timeout, five in a row: the watchdog armed for the
    first fires while a later command waits, and must wait for that one's time instead."""

    async def main():
        server, port, _connections = await _server(answer_first=100, delay=0.2)
        client = RespClient("127.0.0.1", port, timeout_s=0.5)
        got = [await client.execute_command("PING") for _ in range(5)]
        await client.aclose()
        server.close()
        return got

    assert asyncio.run(main()) == [b"PONG"] * 5


def test_a_command_written_to_a_connection_just_lost_still_times_out():
    """The race where the connection drops between connecting and sending: the command is
    written into a closed connection and no answer can come; it fails in time, not never."""

    async def main():
        server, port, connections = await _server(answer_first=1)
        client = RespClient("127.0.0.1", port, timeout_s=0.3)
        await client.execute_command("PING")
        proto = client._proto
        connections[0].close()
        while not proto.closed:
            await asyncio.sleep(0.01)
        with pytest.raises(RedisTimeoutError):
            # (a hang guard only: without a watchdog this would wait forever)
            await asyncio.wait_for(client._send(proto, [("PING",)]), 5)
        await client.aclose()
        server.close()

    asyncio.run(main())
