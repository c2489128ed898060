"""The request body: a bounded read of one JSON object (400 in the route's error format
otherwise). What the object must hold is checked by `requests.validate`."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.hotpath.http import BodyTooLarge, GatewayError, read_body


async def read_json(receive: Any, limit: int) -> tuple[bytes, dict]:
    """(raw bytes, parsed object) of the request body."""
    try:
        raw = await read_body(receive, limit)
    except BodyTooLarge:
        raise GatewayError(
            400,
            f"Request body is larger than {limit} bytes (ALEPHANT_MAX_BODY_BYTES).",
            code="request_too_large",
        ) from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise GatewayError(400, "Request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise GatewayError(400, "Request body must be a JSON object.", code="invalid_json")
    return raw, body
