"""A lean HTTP/1.1 client for the hot path's upstream calls (POST, keep-alive pool, TLS).

Why not aiohttp: on the gateway's hot path its client was the largest single cost of a call
(~125 us of ~480 us, `python -m bench.profile`). This one does what the hot path needs and no
more: one request written in one `write`, a response parsed by `core.http1_proto.Connection`,
and a LIFO pool of idle keep-alive connections per (scheme, host, port).

The egress policy (`core.egress`) is applied to every new connection: the name is resolved
once, every resolved address vetted, and the socket connected to a vetted address (never a
second lookup); Host and TLS SNI carry the name. Redirects are never followed (the caller gets
the 3xx). Proxy variables are ignored, as they were with aiohttp (`trust_env` off).

Use::

    client = Http1Client(policy, connect_timeout_s=10)
    resp = await client.fetch(url, body, headers, timeout_s=30)     # body read, conn released
    resp = await client.open(url, body, headers, read_timeout_s=30)  # head read; then
    async for chunk in resp: ...                                      # body as it arrives
    resp.close()
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import deque
from urllib.parse import quote, urlsplit

from core.egress import DEFAULT_PORTS, EgressPolicy, EgressRefused, parse_host
from core.http1_proto import Connection, Disconnected, ProtocolError, UpstreamError

__all__ = [
    "ConnectError",
    "Disconnected",
    "EgressBlocked",
    "Http1Client",
    "InvalidURL",
    "ProtocolError",
    "Response",
    "UpstreamError",
]

_SAFE_PATH = "/%:@!$&'()*+,;=?~-._"
_MAX_TARGETS = 4096


class ConnectError(UpstreamError):
    """The connection could not be made (refused, unreachable, TLS failure, no DNS answer)."""


class EgressBlocked(ConnectError):
    """The egress policy refused the destination. The message names no address."""


class InvalidURL(UpstreamError):
    pass


class _Target:
    """A parsed URL: pool key, Host header and request-target, computed once per URL."""

    __slots__ = ("host", "host_header", "key", "path", "scheme")

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise InvalidURL("Not a valid URL.") from None
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise InvalidURL("Not an http(s) URL.")
        if parts.username is not None or parts.password is not None:
            raise InvalidURL("Credentials in the URL are not allowed.")
        try:
            host = parse_host(parts.hostname)
        except EgressRefused:
            raise InvalidURL("Not a valid host.") from None
        if isinstance(host, ipaddress.IPv4Address) and str(host) != parts.hostname:
            raise InvalidURL("An IPv4 address must be written in dotted decimal.")
        self.scheme = parts.scheme
        self.host = str(host)
        port = port or DEFAULT_PORTS[parts.scheme]
        self.key = (parts.scheme, self.host, port)
        named = f"[{host}]" if isinstance(host, ipaddress.IPv6Address) else self.host
        self.host_header = named if port == DEFAULT_PORTS[parts.scheme] else f"{named}:{port}"
        path = quote(parts.path or "/", safe=_SAFE_PATH)
        if parts.query:
            path += "?" + quote(parts.query, safe=_SAFE_PATH)
        self.path = path


class Response:
    """An upstream answer: `status`, `headers` (lower-case names), and the body."""

    __slots__ = ("_client", "_conn", "_read_timeout", "_released", "body", "headers", "status")

    def __init__(self, client: Http1Client, conn: Connection, read_timeout: float | None) -> None:
        self._client, self._conn, self._read_timeout = client, conn, read_timeout
        self.status, self.headers = conn.status, conn.headers
        self.body = b""  # `fetch` fills it
        self._released = False  # the connection went back (it may serve another request now)

    def at_eof(self) -> bool:
        """Whether the whole body has arrived (it may still be buffered, unread)."""
        return self._conn.done

    def __aiter__(self) -> Response:
        return self

    async def __anext__(self) -> bytes:
        conn = self._conn
        if self._released:
            raise StopAsyncIteration
        while True:
            data = conn.take()
            if data:
                return data
            if conn.done:
                self._release()
                raise StopAsyncIteration
            await conn.wait(self._read_timeout)

    async def read(self) -> bytes:
        parts = [chunk async for chunk in self]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """Done with this answer: a fully read keep-alive connection goes back to the pool,
        anything else is dropped (a half-read body can't be skipped safely)."""
        if self._released:
            return
        conn = self._conn
        if not conn.done:
            conn.fail(Disconnected("Closed by the client."))
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._client._release(self._conn)


class Http1Client:
    def __init__(
        self,
        policy: EgressPolicy,
        *,
        connect_timeout_s: float = 10.0,
        limit: int = 1000,
        keepalive_s: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self.connect_timeout_s = connect_timeout_s
        self.limit = limit
        self.keepalive_s = keepalive_s
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._open = 0
        self._waiting: deque[asyncio.Future] = deque()
        self.connections_made = 0  # for tests and metrics

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def fetch(
        self, url: str, body: bytes, headers: dict[str, str], *, timeout_s: float
    ) -> Response:
        """POST and read the whole answer within `timeout_s` (connecting included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        conn = await self._exchange(url, body, headers, deadline, None)
        resp = Response(self, conn, None)
        try:
            resp.body = await resp.read()
        except BaseException:
            resp.close()
            raise
        return resp

    async def open(
        self, url: str, body: bytes, headers: dict[str, str], *, read_timeout_s: float
    ) -> Response:
        """POST and return once the head has arrived; each later read waits `read_timeout_s`."""
        conn = await self._exchange(url, body, headers, None, read_timeout_s)
        return Response(self, conn, read_timeout_s)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = _Target(url)
            if len(self._targets) >= _MAX_TARGETS:
                self._targets.clear()
            self._targets[url] = target
        return target

    def _request_bytes(self, target: _Target, body: bytes, headers: dict[str, str]) -> bytes:
        text = "".join(headers) + "".join(headers.values())
        if "\r" in text or "\n" in text:
            raise InvalidURL("A header name or value contains a line break.")
        lines = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        head = (
            f"POST {target.path} HTTP/1.1\r\nhost: {target.host_header}\r\n{lines}"
            f"content-length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def _exchange(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        deadline: float | None,
        read_timeout: float | None,
    ) -> Connection:
        target = self._target(url)
        data = self._request_bytes(target, body, headers)
        for attempt in (0, 1):
            conn = await self._acquire(target, deadline, fresh=attempt == 1)
            conn.start(data)
            if deadline is not None:
                conn.set_deadline(deadline)
            try:
                while not conn.head_done:
                    if conn.exc is not None:
                        raise conn.exc
                    await conn.wait(read_timeout)
            except Disconnected:
                self._release(conn)
                if conn.reused and not conn.got_bytes and attempt == 0:
                    continue  # the upstream had closed it while idle: nothing was processed
                raise
            except BaseException:
                conn.fail(Disconnected("Abandoned."))
                self._release(conn)
                raise
            return conn
        raise AssertionError("unreachable")

    async def _acquire(self, target: _Target, deadline: float | None, fresh: bool) -> Connection:
        loop = asyncio.get_running_loop()
        while True:
            if not fresh:
                pooled = self._pooled(target.key, loop.time())
                if pooled is not None:
                    return pooled
            if self._open < self.limit:
                break
            await self._slot(loop, target.key)
        self._open += 1
        try:
            timeout = self.connect_timeout_s
            if deadline is not None:
                timeout = min(timeout, max(deadline - loop.time(), 0.0))
            async with asyncio.timeout(timeout):
                conn = await self._connect(loop, target)
        except BaseException:
            self._closed_one()
            raise
        conn.busy = True
        return conn

    def _pooled(self, key: tuple[str, str, int], now: float) -> Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.reusable() and now - conn.idle_since < self.keepalive_s:
                conn.busy = True
                return conn
            self._drop(conn)
        return None

    async def _slot(self, loop: asyncio.AbstractEventLoop, key: tuple[str, str, int]) -> None:
        """At `limit`: close idle connections to other hosts, else wait for a release."""
        for other in [k for k in self._idle if k != key]:
            for conn in self._idle.pop(other):
                self._drop(conn)
        if self._open < self.limit:
            return
        waiter = loop.create_future()
        self._waiting.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._wake_one()  # pass the wake-up on
            raise

    async def _connect(self, loop: asyncio.AbstractEventLoop, target: _Target) -> Connection:
        scheme, host, port = target.key
        addresses = await self._vetted(loop, host, port)
        tls = self.ssl_context() if scheme == "https" else None
        last: OSError | None = None
        for address in addresses:
            try:
                _transport, conn = await loop.create_connection(
                    lambda: Connection(loop, target.key),
                    address,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
            except (OSError, ssl.SSLError) as exc:
                last = exc
                continue
            self.connections_made += 1
            return conn
        raise ConnectError("Could not connect to the upstream.") from last

    async def _vetted(self, loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[str]:
        """The addresses to connect to, every one allowed by the egress policy."""
        policy = self.policy
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            if not policy.address_allowed(host, port):
                raise EgressBlocked("The host is not an allowed destination.")
            return [host]
        if (host == "localhost" or host.endswith(".localhost")) and not policy.name_allowed(
            host, port
        ):
            raise EgressBlocked("The host is not an allowed destination.")
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectError("The upstream host name does not resolve.") from exc
        found = [str(info[4][0]) for info in infos]
        try:
            return list(policy.check_addresses(host, port, found))
        except EgressRefused as exc:
            raise EgressBlocked(str(exc)) from None

    def _release(self, conn: Connection) -> None:
        """Back to the pool if it can serve another request, else closed; once per request."""
        if not conn.busy:
            return
        conn.busy = False
        conn.cancel_deadline()
        if conn.reusable():
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(conn.key, []).append(conn)
            conn.reused = True
            if self._waiting:
                self._wake_one()
            return
        self._drop(conn)

    def _drop(self, conn: Connection) -> None:
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.abort()
        if not conn.counted_closed:
            conn.counted_closed = True
            self._closed_one()

    def _closed_one(self) -> None:
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                self._drop(conn)
        self._idle.clear()
