"""A lean Redis client for the request path: the few commands one call sends.

EVALSHA (admit, settle + usage event), XADD (usage events when no budget is on the chain) and
SCRIPT LOAD, on ONE pipelined connection per process. Errors are redis-py's types, so callers
treat it exactly like `redis.asyncio.Redis` (Redis down -> 503).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError


class _Incomplete(Exception):
    pass


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from `buf` at `pos` -> (value, next pos); errors come back as exception
    instances (as redis-py's pipelines return them); `_Incomplete` when more bytes are needed."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind = buf[pos]
    line = bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == 58:  # ':'
        return int(line), pos
    if kind == 36:  # '$'
        size = int(line)
        if size < 0:
            return None, pos
        if len(buf) < pos + size + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + size]), pos + size + 2
    if kind == 42:  # '*'
        count = int(line)
        if count < 0:
            return None, pos
        items = []
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 43:  # '+'
        return line, pos
    if kind == 45:  # '-'
        message = line.decode("utf-8", "replace")
        if message.startswith("NOSCRIPT"):
            return NoScriptError(message), pos
        return ResponseError(message), pos
    raise RedisConnectionError(f"unreadable reply from Redis: {bytes(buf[pos - 64 : pos])!r}")


def _pack(args: Sequence[Any]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        elif not isinstance(arg, bytes | bytearray | memoryview):
            arg = str(arg).encode()
        out.append(b"$%d\r\n" % len(arg))
        out.append(arg)
        out.append(b"\r\n")
    return b"".join(out)


class _RespProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future] = deque()
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        try:
            while self.waiters and pos < len(self.buf):
                value, pos_next = _parse(self.buf, pos)
                pos = pos_next
                future = self.waiters.popleft()
                if not future.done():  # a cancelled or timed-out caller: its reply is dropped
                    future.set_result(value)
        except _Incomplete:
            pass
        except Exception as exc:  # a reply we can't read: this connection is done
            self._fail(exc)
            if self.transport is not None:
                self.transport.close()
        del self.buf[:pos]

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
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
    pipelined connection per process: no pool checkout, no retry wrapper, one timer per
    command, replies matched in order. Roughly a third of redis-py's client CPU per command,
    which at concurrency 1 is most of what enforcement and the usage event cost. The API is
    the subset of `redis.asyncio.Redis` that `Enforcer` and `UsageQueue` use; errors are
    redis-py's (`ConnectionError`, `TimeoutError`, `ResponseError`, `NoScriptError`), so
    callers treat them the same (Redis down -> 503). A timed-out or broken connection is
    dropped and the next call reconnects."""

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
                loop.create_connection(_RespProtocol, self.host, self.port),
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
        proto.transport.write(b"".join(_pack(c) for c in commands))
        timer = loop.call_later(self.timeout_s, self._expire, proto, futures[-1])
        try:
            return [await f for f in futures]
        finally:
            timer.cancel()

    @staticmethod
    def _expire(proto: _RespProtocol, future: asyncio.Future) -> None:
        if not future.done():
            # Redis did not answer in time: fail everything on this connection, drop it.
            proto._fail(RedisTimeoutError("Redis did not answer in time"))
            if proto.transport is not None:
                proto.transport.close()

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
