"""One upstream HTTP/1.1 connection: an asyncio Protocol that parses the response as it arrives.

`core.http1` opens these, writes a request and reads the answer. The parser takes bytes split
anywhere: a head (status line + headers, bounded), then a body delimited by Content-Length,
chunked transfer-encoding or the end of the connection. Body bytes are queued for the reader;
past `HIGH_WATER` buffered bytes the socket stops being read until the reader catches up.
"""

from __future__ import annotations

import asyncio
from typing import Any

MAX_HEAD = 64 * 1024  # status line + headers
MAX_HEADERS = 128
MAX_CHUNK_LINE = 4096  # a chunk-size line (with extensions) or a trailer line
HIGH_WATER = 256 * 1024
# A timer may run a little before its time (uvloop counts in milliseconds): a deadline within
# this much is treated as passed, so the watchdog doesn't re-arm for a fraction of a millisecond.
_TIMER_SLACK_S = 0.001
_HEX = b"0123456789abcdefABCDEF"

# Body framing
_LENGTH, _CHUNKED, _CLOSE, _NONE = 1, 2, 3, 4
# Chunked states
_SIZE, _DATA, _CRLF, _TRAILER = 1, 2, 3, 4


class UpstreamError(Exception):
    """Any failure talking to the upstream (what aiohttp.ClientError was to the hot path)."""


class ProtocolError(UpstreamError):
    """The upstream's answer is not valid HTTP/1.1 (or is over a limit)."""


class Disconnected(UpstreamError, ConnectionError):
    """The connection ended before the answer did."""


class Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[str, str, int]) -> None:
        self.loop = loop
        self.key = key
        self.transport: Any = None
        self.reused = False  # served an earlier request: a failure before any byte may retry
        self.idle_since = 0.0
        self.busy = False  # serving a request (not in the pool)
        self.counted_closed = False
        # The overall deadline and the per-read timeout share ONE watchdog timer per
        # connection, armed lazily and pushed rather than cancelled and re-armed per request
        # and per read (~1.5 us a pair under uvloop, issue 14). When it fires it checks what is
        # due now (`_due`) and re-arms for that, or stops when nothing is. It outlives the
        # request it was armed for: reused, it serves the next one.
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_done = False
        self.got_bytes = False  # any byte of this request's response
        self.keep_alive = True
        self.done = False  # the body is complete
        self.exc: BaseException | None = None
        self._head = b""
        self._framing = 0
        self._remaining = 0
        self._cstate = _SIZE
        self._line = b""
        self._chunks: list[bytes] = []
        self._size = 0
        self._paused = False
        self._waiter: asyncio.Future | None = None
        self._deadline: float | None = None  # the whole exchange (`fetch`)
        self._read_by: float | None = None  # the read being waited for, while one is
        self.head_only = False

    # -- the request side -------------------------------------------------------------------

    def start(self, data: bytes, head_only: bool = False) -> None:
        """Send one request; the connection must be idle (fresh, or a finished keep-alive)."""
        if self.reused:
            self._reset()
        self.head_only = head_only
        self.transport.write(data)

    def reusable(self) -> bool:
        return (
            self.done
            and self.keep_alive
            and self.exc is None
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def set_deadline(self, when: float) -> None:
        self._deadline = when
        self._watch(when)

    def cancel_deadline(self) -> None:
        self._deadline = None  # a watchdog still armed finds nothing due and stops

    def _watch(self, when: float) -> None:
        """Make sure the watchdog fires by `when` (an earlier one re-checks and re-arms)."""
        timer = self._timer
        if timer is not None:
            if self._timer_at <= when:
                return
            timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _due(self) -> float | None:
        deadline, read_by = self._deadline, self._read_by
        if deadline is None or read_by is None:
            return read_by if deadline is None else deadline
        return min(deadline, read_by)

    def _on_timer(self) -> None:
        self._timer = None
        due = self._due()
        if due is None:
            return
        if due <= self.loop.time() + _TIMER_SLACK_S:
            self.fail(TimeoutError())
            return
        self._timer_at = due
        self._timer = self.loop.call_at(due, self._on_timer)

    def _stop_watch(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def fail(self, exc: BaseException) -> None:
        """End this exchange with `exc` (the connection is dropped, never reused)."""
        if self.exc is None and not self.done:
            self.exc = exc
        self.keep_alive = False
        self._wake()
        if self.transport is not None:
            self.transport.abort()

    # -- the reader side ----------------------------------------------------------------------

    async def wait(self, read_timeout: float | None = None) -> None:
        """Until there is something new: the head, body bytes, the end, or a failure."""
        if self._chunks or self.done or self.exc is not None:
            return
        self._waiter = waiter = self.loop.create_future()
        if read_timeout is not None:
            self._read_by = read_by = self.loop.time() + read_timeout
            self._watch(read_by)
        try:
            await waiter
        finally:
            self._waiter = None
            self._read_by = None

    def take(self) -> bytes:
        """The body bytes buffered so far (b"" at the end); raises the exchange's failure."""
        chunks = self._chunks
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = []
            self._size = 0
            if self._paused:
                self._paused = False
                self.transport.resume_reading()
            return data
        if self.exc is not None:
            raise self.exc
        return b""

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def connection_lost(self, exc: BaseException | None) -> None:
        self.keep_alive = False
        if not self.done and self.exc is None:
            if self._framing == _CLOSE and self.head_done:
                self.done = True
            else:
                self.exc = Disconnected("The upstream closed the connection.")
                if exc is not None:
                    self.exc.__cause__ = exc
        self._stop_watch()  # the connection is gone: nothing on it can time out any more
        self._wake()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost decides what the end means

    def data_received(self, data: bytes) -> None:
        if self.done or self.exc is not None:
            self.keep_alive = False  # bytes nobody asked for: never reuse this connection
            return
        self.got_bytes = True
        try:
            if not self.head_done:
                data = self._feed_head(data)
                if not self.head_done:
                    return
                self._wake()
            if data:
                self._feed_body(data)
        except ProtocolError as exc:
            self.fail(exc)
            return
        if self._chunks or self.done:
            self._wake()

    # -- parsing ------------------------------------------------------------------------------

    def _feed_head(self, data: bytes) -> bytes:
        while not self.head_done:
            buf = self._head + data
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("The upstream's response head is too large.")
                self._head = buf
                return b""
            if end > MAX_HEAD:
                raise ProtocolError("The upstream's response head is too large.")
            self._head = b""
            data = buf[end + 4 :]
            self._parse_head(buf[:end])
        return data

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        status_line = lines[0]
        if len(lines) > MAX_HEADERS + 1:
            raise ProtocolError("The upstream sent too many headers.")
        version, _, rest = status_line.partition(b" ")
        code = rest[:3]
        if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise ProtocolError("The upstream's status line is not HTTP/1.1.")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip() or line[:1] in b" \t":
                raise ProtocolError("The upstream sent a malformed header.")
            key = name.decode("latin-1").lower()
            text = value.strip(b" \t").decode("latin-1")
            headers[key] = headers[key] + ", " + text if key in headers else text
        if 100 <= status < 200:
            if status == 101:
                raise ProtocolError("The upstream switched protocols.")
            return  # an interim answer: the real head follows
        self.status, self.headers, self.head_done = status, headers, True
        if version == b"HTTP/1.0" or "close" in headers.get("connection", "").lower():
            self.keep_alive = False
        self._framing_from(headers)

    def _framing_from(self, headers: dict[str, str]) -> None:
        te = headers.get("transfer-encoding")
        if self.head_only or self.status in (204, 304):
            self._framing = _NONE
            self.done = True
        elif te is not None:
            if "content-length" in headers:
                self.keep_alive = False  # both framings: smuggling-shaped, read it once
            if te.rsplit(",", 1)[-1].strip().lower() == "chunked":
                self._framing = _CHUNKED
            else:
                self._framing, self.keep_alive = _CLOSE, False
        elif "content-length" in headers:
            values = {v.strip() for v in headers["content-length"].split(",")}
            value = values.pop()
            if values or not value.isdigit() or len(value) > 15:
                raise ProtocolError("The upstream sent a bad Content-Length.")
            self._framing, self._remaining = _LENGTH, int(value)
            self.done = self._remaining == 0
        else:
            self._framing, self.keep_alive = _CLOSE, False

    def _push(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._paused and not self.done:
            self._paused = True
            self.transport.pause_reading()

    def _feed_body(self, data: bytes) -> None:
        framing = self._framing
        if framing == _LENGTH:
            n = self._remaining
            if len(data) >= n:
                if len(data) > n:
                    self.keep_alive = False  # more than announced
                    data = data[:n]
                self._remaining = 0
                self.done = True
            else:
                self._remaining = n - len(data)
            if data:
                self._push(data)
        elif framing == _CHUNKED:
            self._feed_chunked(data)
        elif framing == _CLOSE:
            self._push(data)
        else:
            self.keep_alive = False

    def _feed_chunked(self, data: bytes) -> None:
        while data:
            if self._cstate == _DATA:
                n = self._remaining
                if len(data) < n:
                    self._remaining = n - len(data)
                    self._push(data)
                    return
                self._push(data[:n])
                data = data[n:]
                self._cstate = _CRLF
                continue
            buf = self._line + data
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_CHUNK_LINE:
                    raise ProtocolError("The upstream sent an overlong chunk line.")
                self._line = buf
                return
            self._line = b""
            line, data = buf[:end], buf[end + 1 :]
            if line.endswith(b"\r"):
                line = line[:-1]
            self._chunk_line(line)
            if self.done:
                if data:
                    self.keep_alive = False
                return

    def _chunk_line(self, line: bytes) -> None:
        state = self._cstate
        if state == _SIZE:
            size = line.split(b";", 1)[0].strip(b" \t")
            if not size or size.strip(_HEX) or len(size) > 12:
                raise ProtocolError("The upstream sent a bad chunk size.")
            self._remaining = int(size, 16)
            self._cstate = _DATA if self._remaining else _TRAILER
        elif state == _CRLF:
            if line:
                raise ProtocolError("The upstream's chunk is longer than announced.")
            self._cstate = _SIZE
        elif not line:  # the empty line ending the trailers
            self.done = True
