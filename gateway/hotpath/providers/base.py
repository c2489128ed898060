"""What every provider adapter shares: the upstream request, usage, errors (SSE: `sse.py`).

An adapter turns a client request (already parsed JSON, in the client's format) into one HTTP
request to its provider, and the provider's answer back into the client's format. Adapters are
Django-free and do no I/O: the funnel (`gateway/hotpath/forward.py`, `relay.py`) sends,
retries and streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass
class Usage:
    """Token counts in one convention: `input_tokens` includes cached and cache-write tokens."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    reported: bool = False  # False: estimated from what was seen (no usage from the provider)

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Credential:
    id: int
    provider: str
    name: str
    base_url: str | None
    api_version: str | None
    organization: str | None
    timeout_s: float
    secret: str = field(repr=False)  # never in a repr, a log line or a traceback


@dataclass
class UpstreamRequest:
    url: str
    headers: dict[str, str]
    body: bytes
    stream: bool


class ProviderError(Exception):
    """An upstream failure. `retryable` says whether another attempt may succeed."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retryable: bool = False,
        error_type: str = "upstream_error",
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retryable = retryable
        self.error_type = error_type
        self.retry_after = retry_after


class UnsupportedRoute(Exception):
    """This provider cannot serve this endpoint (e.g. embeddings on Anthropic)."""


@dataclass
class Reply:
    """A finished non-streaming answer, already in the client's format."""

    body: bytes
    usage: Usage
    status: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def estimate_tokens(text_len: int) -> int:
    """Characters -> tokens when nobody counted them (about 4 characters a token)."""
    return (text_len + 3) // 4


def count(value: Any) -> int:
    """A token count from a provider's JSON: a non-negative int, else 0 (never raises).

    Upstreams are not ours: a float (`12.0`), a numeric string, null or garbage must not
    turn into a 500 or a negative charge."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if value > 0 else 0
    if isinstance(value, float):
        return int(value) if value > 0 and value.is_integer() else 0
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return 0


def section(data: Any, key: str) -> dict[str, Any]:
    """`data[key]` when both are JSON objects, else an empty dict."""
    value = data.get(key) if isinstance(data, dict) else None
    return value if isinstance(value, dict) else {}


# The gateway relays bodies without decoding them (`auto_decompress=False`) and parses streams
# as they pass, so it asks every upstream for the identity encoding (aiohttp would otherwise
# advertise gzip/deflate on our behalf).
NO_COMPRESSION = {"accept-encoding": "identity"}


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, bytes) else orjson.dumps(data)
    if event:
        return b"event: " + event.encode() + b"\ndata: " + payload + b"\n\n"
    return b"data: " + payload + b"\n\n"


def error_from_status(status: int, message: str, retry_after: str | None = None) -> ProviderError:
    """Classify an upstream HTTP error: 408/409/429/5xx retry; auth errors are ours (502)."""
    if status in (401, 403):
        return ProviderError(
            502,
            "the provider rejected the workspace's credential: " + message,
            error_type="upstream_auth_error",
        )
    if status == 429:
        return ProviderError(
            429, message, retryable=True, error_type="rate_limit_exceeded", retry_after=retry_after
        )
    if status in (408, 409) or status >= 500:
        return ProviderError(502, message, retryable=True, error_type="upstream_error")
    if status == 404:
        return ProviderError(404, message, error_type="model_not_found")
    return ProviderError(400 if status < 500 else 502, message, error_type="invalid_request_error")


def provider_message(body: bytes, limit: int = 500) -> str:
    """The provider's own error message when it parses; never the raw body beyond `limit`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "the provider returned an error"
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail")
            if isinstance(msg, str):
                return msg[:limit]
        if isinstance(err, str):
            return err[:limit]
    return "the provider returned an error"


def content_text(content: Any) -> str:
    """The text of an OpenAI message `content` (a string or a list of typed parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))
