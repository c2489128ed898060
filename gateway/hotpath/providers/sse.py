"""An incremental Server-Sent Events decoder that keeps each event's exact bytes.

Upstreams are written by others, so this follows the WHATWG event-stream grammar rather than
what one provider happens to send: lines end in `\\n`, `\\r\\n` or `\\r` (mixed in one stream);
`field:value` with or without one space after the colon; `:` comment lines (keep-alives);
several `data:` lines join with `\\n`; a blank line ends an event; a leading BOM is ignored;
and network reads may split anything at any byte, including between `\\r` and `\\n`.

Each event keeps `raw`, the exact upstream bytes through its terminating blank line, so a
pass-through can forward what the upstream sent byte for byte and drop only what Alephant
itself added. Blocks with no data (comments, keep-alives) are returned too (`data is None`)
so they reach the client unchanged.

Usage decisions are made on parsed JSON (`parse_json`), never on how bytes spell it; the only
byte test is `may_name`, a sound pre-filter: a JSON string equal to `usage` is spelled either
literally or with a `\\u` escape, so data containing neither cannot carry that key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
DONE = b"[DONE]"


@dataclass(slots=True)
class Event:
    name: bytes | None  # the `event:` field, if any
    data: bytes | None  # `data:` lines joined with b"\n"; None for a comment-only block
    raw: bytes  # the exact upstream bytes of this block, terminator included

    @property
    def is_done(self) -> bool:
        return self.data is not None and self.data.strip() == DONE


class SSEDecoder:
    """`feed(bytes) -> [Event]`, then `close() -> [Event]` at the end of the stream."""

    __slots__ = ("_buf", "_data", "_line", "_name", "_started")

    def __init__(self) -> None:
        self._buf = b""  # bytes of the current (unfinished) block
        self._line = 0  # offset in _buf of the first line not yet parsed
        self._data: list[bytes] = []
        self._name: bytes | None = None
        self._started = False

    def at_boundary(self, chunk: bytes) -> bool:
        """True when `chunk` starts a block: no block begun, and past the stream's start (a
        first chunk that may hold or begin a BOM is left to `feed`)."""
        if self._buf:
            return False
        if not self._started:
            if len(chunk) < 3 or chunk.startswith(_BOM):
                return False
            self._started = True
        return True

    def feed(self, chunk: bytes) -> list[Event]:
        buf = self._buf + chunk if self._buf else chunk
        if not self._started:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                self._line = 3
        events: list[Event] = []
        if b"\r" in buf:
            block, pos = self._scan_any(buf, events)
        else:  # the common case, one line ending: a plain find is 2x faster than the regex
            block, pos = self._scan_lf(buf, events)
        self._buf = buf[block:]
        self._line = pos - block
        return events

    def _scan_lf(self, buf: bytes, events: list[Event]) -> tuple[int, int]:
        block = 0  # start of the current block in buf
        pos = self._line
        find = buf.find
        while (end := find(b"\n", pos)) >= 0:
            if end > pos:
                if buf.startswith(b"data: ", pos):  # most lines: skip the generic split
                    self._data.append(buf[pos + 6 : end])
                else:
                    self._field(buf[pos:end])
            else:
                events.append(Event(self._name, self._joined(), buf[block : end + 1]))
                block = end + 1
                self._data = []
                self._name = None
            pos = end + 1
        return block, pos

    def _scan_any(self, buf: bytes, events: list[Event]) -> tuple[int, int]:
        block = 0
        pos = self._line
        for match in _EOL.finditer(buf, pos):
            if match.group() == b"\r" and match.end() == len(buf):
                break  # maybe the first half of a \r\n split across reads: wait for more
            line = buf[pos : match.start()]
            pos = match.end()
            if line:
                self._field(line)
                continue
            events.append(Event(self._name, self._joined(), buf[block:pos]))
            block = pos
            self._data = []
            self._name = None
        return block, pos

    def close(self) -> list[Event]:
        """End of stream: whatever is left is one last block, its raw bytes forwarded as is.

        Lenient where the grammar would drop it: a last event without its blank line (some
        servers close right after `data: [DONE]\\n`, or without any newline) is dispatched;
        its JSON either parses whole or is ignored, so a cut cannot invent usage."""
        buf = self._buf
        if not buf:
            return []
        line = buf[self._line :].rstrip(b"\r\n")
        if line:
            self._field(line)
        event = Event(self._name, self._joined(), buf)
        self._buf, self._line, self._data, self._name = b"", 0, [], None
        return [event]

    def _field(self, line: bytes) -> None:
        if line[0] == 0x3A:  # b":" -> a comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._name = value

    def _joined(self) -> bytes | None:
        if not self._data:
            return None
        return self._data[0] if len(self._data) == 1 else b"\n".join(self._data)


def parse_json(data: bytes | None) -> dict[str, Any] | None:
    """The event's JSON object, or None when it is not one (never raises)."""
    if not data:
        return None
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def may_name(data: bytes, key: bytes) -> bool:
    """False only when `data` certainly has no JSON string equal to `key` (see module doc)."""
    return key in data or b"\\u" in data


# Text fields whose length estimates output tokens when a stream never reports usage. An
# estimate only (billing uses reported usage whenever there is one), so a tolerant scan is
# enough: any whitespace around the colon, escaped quotes inside the value.
_TEXT = re.compile(
    rb'"(?:content|text|arguments|refusal|reasoning_content|reasoning|partial_json|thinking|delta)"'
    rb'\s*:\s*"((?:[^"\\]|\\.)*)"'
)


def text_length(data: bytes | None) -> int:
    if not data:
        return 0
    return sum(len(m) for m in _TEXT.findall(data))


class TextTally:
    """`text_length` summed over a stream's events, measured only if someone asks.

    The estimate is needed only when a stream never reports usage, and the scan costs more than
    the rest of the relay (~4 us an event), so events are kept (bounded: measured in batches
    of `BATCH` bytes) and scanned one by one, exactly as `text_length` each, when `chars` is
    read."""

    BATCH = 64 * 1024
    __slots__ = ("_chars", "_pending", "_size")

    def __init__(self) -> None:
        self._chars = 0
        self._pending: list[bytes] = []
        self._size = 0

    def add(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)
        if self._size > self.BATCH:
            self._measure()

    def extend(self, datas: list[bytes]) -> None:
        self._pending.extend(datas)
        self._size += sum(map(len, datas))
        if self._size > self.BATCH:
            self._measure()

    def _measure(self) -> None:
        self._chars += sum(text_length(data) for data in self._pending)
        self._pending, self._size = [], 0

    @property
    def chars(self) -> int:
        if self._pending:
            self._measure()
        return self._chars
