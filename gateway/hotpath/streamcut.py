"""The last event of a stream the upstream cut: an error the official SDKs raise, so a caller
can tell a truncated answer from a finished one.

The status line (200) and part of the answer are already sent when the cut is noticed, so the
error travels in the stream itself, in each API's own spelling:

* OpenAI chat / completions: `data: {"error": {...}}` (the openai SDKs raise `APIError` on a
  chunk with an `error` key; OpenAI itself reports mid-stream failures this way).
* OpenAI responses: `event: error` with the Responses API's `{"type": "error", "code",
  "message"}`, plus the same `error` object, so the SDK raises rather than yields it.
* Anthropic messages: `event: error` with `{"type": "error", "error": {"type": "api_error",
  "message"}}` (the anthropic SDKs raise on an `error` event).
"""

from __future__ import annotations

import orjson

from gateway.hotpath.http import GatewayError

_WHY = {
    "upstream_truncated": "the provider's stream ended before its final event",
    "upstream_timeout": "the provider stopped sending within the provider key's timeout",
    "upstream_malformed": "the provider's stream could not be read",
}


def stream_cut_event(*, style: str, endpoint: str, error_type: str, request_id: str) -> bytes:
    """The SSE event that ends a cut stream for the client (`error_type` as in the ledger)."""
    why = _WHY.get(error_type, "the provider's stream failed")
    message = (
        f"Upstream stream cut: {why}; the answer above is incomplete "
        f"(request {request_id}, recorded as {error_type})."
    )
    status = 504 if error_type == "upstream_timeout" else 502
    error = GatewayError(status, message, code=error_type)
    if style == "anthropic":
        return b"event: error\ndata: " + error.body("anthropic") + b"\n\n"
    body = orjson.loads(error.body("openai"))
    if endpoint == "responses":
        event = {"type": "error", "code": error_type, "message": message, "param": None, **body}
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"
    return b"data: " + orjson.dumps(body) + b"\n\n"
