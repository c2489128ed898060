"""The request body: bounded read, JSON object, and the fields each route needs before anything
is priced or forwarded (400 in the route's error format otherwise)."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.hotpath.http import BodyTooLarge, GatewayError, read_body

REQUIRED = {
    "chat": ("messages",),
    "completions": ("prompt",),
    "embeddings": ("input",),
    "responses": ("input",),
    "messages": ("messages", "max_tokens"),
}


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


def model_ref(endpoint: str, body: dict) -> str:
    """The requested model, after checking the route's required fields."""
    ref = body.get("model")
    if not isinstance(ref, str) or not ref:
        raise GatewayError(
            400,
            "Missing required parameter: `model`.",
            param="model",
            code="missing_required_parameter",
        )
    for name in REQUIRED[endpoint]:
        if body.get(name) in (None, "", []):
            raise GatewayError(
                400,
                f"Missing required parameter: `{name}`.",
                param=name,
                code="missing_required_parameter",
            )
    return ref


def max_output_tokens(endpoint: str, body: dict, default: int) -> int:
    """The output allowance the reservation is computed for."""
    if endpoint == "embeddings":
        return 0
    return int(
        body.get("max_completion_tokens")
        or body.get("max_tokens")
        or body.get("max_output_tokens")
        or default
    )
