"""A lean Redis client for the request path: the few commands one call sends.

EVALSHA (admit, settle + usage event), XADD (usage events when no budget is on the chain) and
SCRIPT LOAD, on ONE pipelined connection per process. Errors are redis-py's types, so callers
treat it exactly like `redis.asyncio.Redis` (Redis down -> 503).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# A timer may run a little before its time (uvloop counts in milliseconds): a batch due within
# this much is treated as due, so the watchdog doesn't re-arm for a fraction of a millisecond.
_TIMER_SLACK_S = 0.001


def _reply(value: Any) -> Any:
    """hiredis' error replies as redis-py's types: NOSCRIPT is `NoScriptError`, so a script
    call reloads and retries (Redis restarted, or a replica promoted)."""
    if isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT"):
        return NoScriptError(str(value))
    return value


# RESP in C (hiredis, pinned in the lock): per command ~1.7 us to pack and ~0.3 us to read an
# admit's reply, where the pure-Python codec took ~4.4 and ~5.2 us (issue 14).
def pack_command(command: tuple) -> bytes:
    try:
        return hiredis.pack_command(command)
    except TypeError:  # hiredis takes str, bytes, memoryview, int and float
        return hiredis.pack_command(tuple(_plain(a) for a in command))


def _plain(arg: Any) -> Any:
    if isinstance(arg, bytearray):
        return bytes(arg)
    if isinstance(arg, bool):
        return int(arg)
    return arg if isinstance(arg, str | bytes | memoryview | int | float) else str(arg)


class _RespProtocol(asyncio.Protocol):
    def __init__(self, timeout_s: float = 5.0) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future] = deque()
        self.timeout_s = timeout_s
        # The answer timeout without a timer per command (arming and cancelling one cost
        # ~1.5 us a call under uvloop, issue 14): each batch notes when its answer is due and
        # how many replies must have arrived by then; ONE watchdog per connection runs only
        # while replies are outstanding and checks the oldest batch. Replies come in order,
        # so `sent - len(waiters)` is how many have arrived and the oldest batch is due first.
        self.sent = 0
        self.due: deque[tuple[int, float]] = deque()  # (replies needed, when due), in order
        self.watchdog: asyncio.TimerHandle | None = None
        # Errors come back as exception instances, in place (as redis-py's pipelines return
        # them); a reply that isn't RESP raises `RedisConnectionError` and drops the connection.
        self.reader = hiredis.Reader(protocolError=RedisConnectionError, replyError=ResponseError)
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader, waiters = self.reader, self.waiters
        reader.feed(data)
        try:
            while (value := reader.gets()) is not False:
                if not waiters:
                    raise RedisConnectionError("a reply from Redis that nobody asked for")
                future = waiters.popleft()
                if not future.done():  # a cancelled or timed-out caller: its reply is dropped
                    future.set_result(_reply(value))
        except Exception as exc:  # a reply we can't read: this connection is done
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()

    def sent_batch(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        """Note a batch of `count` commands just written: its replies are due in timeout_s."""
        self.sent += count
        self._drop_answered()
        when = loop.time() + self.timeout_s
        self.due.append((self.sent, when))
        if self.watchdog is None:
            self.watchdog = loop.call_at(when, self._check, loop)

    def _drop_answered(self) -> None:
        """Forget the batches whose replies all arrived (here rather than per reply)."""
        due, answered = self.due, self.sent - len(self.waiters)
        while due and due[0][0] <= answered:
            due.popleft()

    def _check(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watchdog = None
        self._drop_answered()
        due = self.due
        if not due:
            return  # nothing outstanding: the next batch re-arms the watchdog
        when = due[0][1]
        if when <= loop.time() + _TIMER_SLACK_S:
            # Redis did not answer in time: fail everything on this connection, drop it.
            self._fail(RedisTimeoutError("Redis did not answer in time"))
            if self.transport is not None:
                self.transport.close()
            return
        self.watchdog = loop.call_at(when, self._check, loop)

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        self.due.clear()
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost ({exc or 'closed'})"))


class _Pipeline:
    def __init__(self, client: RespClient) -> None:
        self.client = client
        self.commands: list[tuple] = []

    def evalsha(self, *args: Any) -> _Pipeline:
        self.commands.append(("EVALSHA", *args))
        return self

    def xadd(self, stream: str, fields: dict) -> _Pipeline:
        self.commands.append(("XADD", stream, "*", *(x for kv in fields.items() for x in kv)))
        return self

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        commands, self.commands = self.commands, []
        results = await self.client.execute_many(commands)
        if raise_on_error:
            for result in results:
                if isinstance(result, Exception):
                    raise result
        return results


class RespClient:
    """The few commands the request path sends per call (EVALSHA, XADD, SCRIPT LOAD), on ONE
    pipelined connection per process: no pool checkout, no retry wrapper, one watchdog
    timer per connection, replies matched in order. Roughly a third of redis-py's client CPU
    per command, which at concurrency 1 is most of what enforcement and the usage event
    cost. The API is the subset of `redis.asyncio.Redis` that `Enforcer` and `UsageQueue`
    use; errors are redis-py's (`ConnectionError`, `TimeoutError`, `ResponseError`,
    `NoScriptError`), so callers treat them the same (Redis down -> 503). A timed-out or
    broken connection is dropped and the next call reconnects."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 1.0,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._proto: _RespProtocol | None = None
        self._connecting: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RespClient:
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", ""):
            raise ValueError(f"RespClient speaks plain redis:// only, not {parsed.scheme}://")
        path = (parsed.path or "/").strip("/")
        return cls(
            parsed.hostname or "127.0.0.1",
            parsed.port or 6379,
            int(path) if path else 0,
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            **kwargs,
        )

    async def _connection(self) -> _RespProtocol:
        proto = self._proto
        loop = asyncio.get_running_loop()
        if proto is not None and not proto.closed and self._loop is loop:
            return proto
        if self._connecting is not None and self._loop is loop:
            return await asyncio.shield(self._connecting)
        self._loop = loop
        self._connecting = loop.create_future()
        try:
            proto = await self._open(loop)
        except BaseException as exc:
            self._connecting.set_exception(exc)
            self._connecting.exception()  # retrieved: waiters re-raise it themselves
            self._connecting = None
            raise
        self._connecting.set_result(proto)
        self._connecting = None
        self._proto = proto
        return proto

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _RespProtocol:
        try:
            _transport, proto = await asyncio.wait_for(
                loop.create_connection(lambda: _RespProtocol(self.timeout_s), self.host, self.port),
                self.connect_timeout_s,
            )
        except TimeoutError:
            raise RedisTimeoutError("timed out connecting to Redis") from None
        setup: list[tuple] = []
        if self.password:
            setup.append(
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
        if self.db:
            setup.append(("SELECT", self.db))
        if setup:
            for result in await self._send(proto, setup):
                if isinstance(result, Exception):
                    if proto.transport is not None:
                        proto.transport.close()
                    raise result
        return proto

    async def _send(self, proto: _RespProtocol, commands: list[tuple]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        proto.waiters.extend(futures)
        assert proto.transport is not None
        proto.transport.write(b"".join([pack_command(c) for c in commands]))
        proto.sent_batch(len(futures), loop)
        return [await f for f in futures]

    async def execute_many(self, commands: list[tuple]) -> list[Any]:
        if not commands:
            return []
        return await self._send(await self._connection(), commands)

    async def execute_command(self, *args: Any) -> Any:
        proto = self._proto
        if proto is None or proto.closed or self._loop is not asyncio.get_running_loop():
            proto = await self._connection()
        [result] = await self._send(proto, [args])
        if isinstance(result, Exception):
            raise result
        return result

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        return await self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def script_load(self, source: str) -> Any:
        return await self.execute_command("SCRIPT", "LOAD", source)

    async def xadd(self, stream: str, fields: dict) -> Any:
        return await self.execute_command(
            "XADD", stream, "*", *(x for kv in fields.items() for x in kv)
        )

    def pipeline(self, transaction: bool = False) -> _Pipeline:
        if transaction:
            raise ValueError("RespClient pipelines are not transactions")
        return _Pipeline(self)

    async def aclose(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
