"""Incremental decoding of an upstream's `Content-Encoding` (identity, gzip, deflate).

Adapters ask for `accept-encoding: identity` (`base.NO_COMPRESSION`), so a compliant upstream
never compresses. One that does anyway must still be read, not relayed as bytes nobody can
parse (usage lost, the call billed as truncated): the relay passes each read through
`BodyDecoder.feed` before the SSE decoder, and a non-streamed body through `decode_body`.
Output is bounded, so a hostile upstream's compression bomb fails the call instead of the
process.
"""

from __future__ import annotations

import zlib

from gateway.hotpath.providers.base import ProviderError

MAX_DECODED_BYTES = 64 * 1024 * 1024
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def _malformed(message: str) -> ProviderError:
    return ProviderError(502, message, retryable=True, error_type="upstream_malformed")


class BodyDecoder:
    """`feed(bytes) -> bytes`, then `flush() -> bytes`; identity passes bytes through."""

    __slots__ = ("_head", "_limit", "_out", "_z")

    def __init__(self, content_encoding: str | None, *, limit: int = MAX_DECODED_BYTES) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding not in _WBITS and encoding != "identity":
            raise _malformed(f"The provider answered with an unsupported encoding ({encoding}).")
        self._limit = limit
        self._out = 0
        # "deflate" is zlib-wrapped by the spec, but some servers send raw deflate: the first
        # two bytes tell (a zlib header), so they are held until both have arrived.
        self._head: bytes | None = b"" if encoding == "deflate" else None
        self._z = zlib.decompressobj(_WBITS[encoding]) if encoding in _WBITS else None

    @property
    def identity(self) -> bool:
        return self._z is None

    def feed(self, chunk: bytes) -> bytes:
        if self._z is None:
            return chunk
        if self._head is not None:
            chunk = self._head + chunk
            if len(chunk) < 2:
                self._head = chunk
                return b""
            self._head = None
            if chunk[0] & 0x0F != 8 or (chunk[0] << 8 | chunk[1]) % 31:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            out = self._z.decompress(chunk, self._limit - self._out + 1)
        except zlib.error:
            raise _malformed("The provider's compressed answer is corrupt.") from None
        self._out += len(out)
        if self._out > self._limit or self._z.unconsumed_tail:
            raise _malformed("The provider's compressed answer is too large.")
        return out

    def flush(self) -> bytes:
        if self._z is None:
            return b""
        try:
            return self._z.flush()
        except zlib.error:
            raise _malformed("The provider's compressed answer is corrupt.") from None


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    decoder = BodyDecoder(content_encoding)
    if decoder.identity:
        return body
    return decoder.feed(body) + decoder.flush()
