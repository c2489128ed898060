"""The OTLP protobuf wire format, written by hand (`opentelemetry/proto/{trace,metrics}/v1`).

Why not the SDK: its span objects, attribute hashing and the generated protobuf classes cost
~150 us of CPU per traced call (+75 % CPU per gateway call, measured). Protobuf is simple to
write: a field is a tag (`number << 3 | wire type`) then a varint, 8 fixed bytes, or a varint
length and that many bytes; a message is its fields concatenated, in any order; a repeated
field is the field written once per item. So the parts that repeat across calls (the resource,
the scope, an attribute's key, a model's attributes) are encoded once and cached as bytes, and
a span is mostly a `b"".join` of cached pieces. `tests/gateway/test_otlp.py` decodes what this
writes with `opentelemetry-proto` (random values, hypothesis) to hold it to the real schema.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

# Wire types.
VARINT, I64, LEN = 0, 1, 2
_SMALL = [bytes((n,)) for n in range(128)]
_DOUBLE = struct.Struct("<d")
_FIXED64 = struct.Struct("<Q")


def varint(n: int) -> bytes:
    """Unsigned LEB128; a negative int64 is written as its 64-bit two's complement."""
    if 0 <= n < 0x80:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: a string, bytes, or an embedded message."""
    return tag(number, LEN) + varint(len(payload)) + payload


def fixed64(number: int, value: int) -> bytes:
    return tag(number, I64) + _FIXED64.pack(value)


def double(number: int, value: float) -> bytes:
    return tag(number, I64) + _DOUBLE.pack(value)


def any_value(value: Any) -> bytes:
    """An AnyValue message for a str, bool, int or float (bool before int: it is one)."""
    if isinstance(value, str):
        raw = value.encode()
        return b"\x0a" + varint(len(raw)) + raw
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    raise TypeError(f"unsupported attribute value {value!r}")


def attribute(number: int, key: str, value: Any) -> bytes:
    """A KeyValue as field `number` of its parent (9 in a Span or a HistogramDataPoint)."""
    return field(number, field(1, key.encode()) + field(2, any_value(value)))


def attributes(number: int, attrs: dict[str, Any]) -> bytes:
    return b"".join(attribute(number, k, v) for k, v in attrs.items())


class Attr:
    """One attribute key of one parent field, its prefix encoded once.

    `int_` and `bool_` values repeat (status codes, attempts, small token counts): their
    encodings are cached (bounded); a string is encoded each time (request ids, sessions)."""

    __slots__ = ("_bools", "_int", "_ints", "_key", "_number", "_short", "_short_max")

    def __init__(self, key: str, number: int = 9) -> None:
        self._key = field(1, key.encode())
        self._number = tag(number, LEN)
        self._ints: dict[Any, bytes] = {}  # True == 1: bools have their own two encodings
        self._bools = (self._kv(b"\x10\x00"), self._kv(b"\x10\x01"))
        # A string short enough that every length is one byte: one %-format, no varint calls.
        # KeyValue length = key field + 0x12 + len + 0x0a + len + n = len(key field) + 4 + n.
        self._short_max = 0x80 - 4 - len(self._key)
        escaped = self._key.replace(b"%", b"%%")
        self._short = self._number + b"%c" + escaped + b"\x12%c\x0a%c%b"
        self._int = self._number + b"%c" + escaped + b"\x12%c\x18%b"

    def _kv(self, value: bytes) -> bytes:
        kv = self._key + b"\x12" + varint(len(value)) + value
        return self._number + varint(len(kv)) + kv

    def str_(self, value: str) -> bytes:
        raw = value.encode()
        n = len(raw)
        if n < self._short_max:
            return self._short % (0x80 - self._short_max + n, n + 2, n, raw)
        any_ = b"\x0a" + varint(n) + raw
        kv = self._key + b"\x12" + varint(len(any_)) + any_
        return self._number + varint(len(kv)) + kv

    def int_(self, value: int) -> bytes:
        encoded = self._ints.get(value)
        if encoded is None:
            raw = varint(value)
            if self._short_max > 13:  # key short enough: every length is one byte
                encoded = self._int % (len(self._key) + 3 + len(raw), 1 + len(raw), raw)
            else:
                encoded = self._kv(b"\x18" + raw)
            if len(self._ints) < 4096:
                self._ints[value] = encoded
        return encoded

    def bool_(self, value: bool) -> bytes:
        return self._bools[1] if value else self._bools[0]

    def double_(self, value: float) -> bytes:
        return self._kv(b"\x21" + _DOUBLE.pack(value))

    def cached(self, value: Any) -> bytes:
        """Any value, memoised (a refusal reason, a currency: a handful of distinct values)."""
        key = (type(value), value)
        encoded = self._ints.get(key)
        if encoded is None:
            encoded = self._kv(any_value(value))
            if len(self._ints) < 4096:
                self._ints[key] = encoded
        return encoded


def resource(attrs: dict[str, Any]) -> bytes:
    """A Resource message (its attributes: field 1)."""
    return attributes(1, attrs)


def scope(name: str, version: str = "") -> bytes:
    """An InstrumentationScope message."""
    return field(1, name.encode()) + (field(2, version.encode()) if version else b"")


def traces_request(resource_msg: bytes, scope_msg: bytes, spans: Iterable[bytes]) -> bytes:
    """ExportTraceServiceRequest{resource_spans: [{resource, scope_spans: [{scope, spans}]}]};
    `spans`: each an already encoded Span message."""
    scope_spans = field(1, scope_msg) + b"".join(
        b"\x12" + varint(len(span)) + span for span in spans
    )
    resource_spans = field(1, resource_msg) + field(2, scope_spans)
    return field(1, resource_spans)


def histogram_point(
    attrs: bytes,
    start_ns: int,
    now_ns: int,
    total: float,
    bounds: Sequence[float],
    counts: Sequence[int],
    low: float,
    high: float,
) -> bytes:
    """A HistogramDataPoint; `attrs`: its attributes already encoded as fields 9."""
    count = sum(counts)
    body = b"".join(
        (
            attrs,
            fixed64(2, start_ns),
            fixed64(3, now_ns),
            fixed64(4, count),
            double(5, total),
            field(6, struct.pack(f"<{len(counts)}Q", *counts)),
            field(7, struct.pack(f"<{len(bounds)}d", *bounds)),
            double(11, low) if count else b"",
            double(12, high) if count else b"",
        )
    )
    return field(1, body)


CUMULATIVE = 2


def histogram_metric(name: str, unit: str, description: str, points: Iterable[bytes]) -> bytes:
    """A Metric holding a cumulative Histogram of `points` (each from `histogram_point`)."""
    histogram = b"".join(points) + tag(2, VARINT) + varint(CUMULATIVE)
    head = field(1, name.encode()) + field(2, description.encode()) + field(3, unit.encode())
    return field(2, head + field(9, histogram))


def metrics_request(resource_msg: bytes, scope_msg: bytes, metrics: Iterable[bytes]) -> bytes:
    """ExportMetricsServiceRequest; `metrics`: each from `histogram_metric` (field 2 of
    ScopeMetrics already)."""
    scope_metrics = field(1, scope_msg) + b"".join(metrics)
    resource_metrics = field(1, resource_msg) + field(2, scope_metrics)
    return field(1, resource_metrics)
