"""Raw ASGI I/O for the gateway: bounded body reads, JSON replies, error bodies per API style."""

from __future__ import annotations

from typing import Any

import orjson

JSON = b"application/json"


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away while sending the body")
        body = message.get("body", b"")
        if body:
            size += len(body)
            if size > limit:
                raise BodyTooLarge
            chunks.append(body)
        if not message.get("more_body"):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def header_list(headers: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    return [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()]


async def send_bytes(
    send: Any,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = JSON,
) -> None:
    raw = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if headers:
        raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


# OpenAI-style `type` for each status when the caller gives none.
_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "budget_exceeded",
    403: "permission_denied",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


class GatewayError(Exception):
    """A refusal or failure the client sees, as JSON in the style of the route's API."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.details = details
        self.status = status
        self.message = message
        self.error_type = error_type or _OPENAI_TYPES.get(status, "api_error")
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self, style: str) -> bytes:
        if style == "anthropic":
            kind = _ANTHROPIC_TYPES.get(self.status, "api_error")
            error: dict[str, Any] = {"type": kind, "message": self.message}
            if self.details:
                error["alephant"] = self.details
            return orjson.dumps({"type": "error", "error": error}, default=str)
        body: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        if self.details:
            body["alephant"] = self.details
        return orjson.dumps({"error": body}, default=str)
