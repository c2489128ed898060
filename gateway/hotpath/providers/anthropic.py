"""Anthropic: `/v1/messages` passes through; OpenAI chat requests are translated both ways.

The bodies translate in `translate/anthropic.py` (`chat_to_messages` / `message_to_chat`); this
module sends them, reads usage from the pass-through stream and translates the stream for an
OpenAI client (`AnthropicToChatStream`).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.hotpath.providers.base import (
    NO_COMPRESSION,
    Credential,
    Reply,
    UnsupportedRoute,
    UpstreamRequest,
    Usage,
    dumps,
    estimate_tokens,
    section,
    sse,
)
from gateway.hotpath.providers.sse import Event, SSEDecoder, TextTally, parse_json
from gateway.hotpath.providers.translate.anthropic import (
    STOP_REASONS,
    chat_to_messages,
    message_to_chat,
)
from gateway.hotpath.providers.usage import anthropic_usage, chat_usage

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"


class AnthropicAdapter:
    family = "anthropic"
    native = frozenset({"messages"})
    translated = frozenset({"chat"})

    def url(self, cred: Credential) -> str:
        base = (cred.base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
        return base + "/v1/messages"

    def headers(self, cred: Credential) -> dict[str, str]:
        return {
            "x-api-key": cred.secret,
            "anthropic-version": cred.api_version or API_VERSION,
            "content-type": "application/json",
            **NO_COMPRESSION,
        }

    def build(
        self,
        endpoint: str,
        body: dict[str, Any],
        model: str,
        cred: Credential,
        stream: bool,
    ) -> UpstreamRequest:
        if endpoint == "messages":
            payload = dumps(body if body.get("model") == model else {**body, "model": model})
        elif endpoint == "chat":
            payload = orjson.dumps(chat_to_messages(body, model, stream))
        else:
            raise UnsupportedRoute(f"Anthropic models do not serve /{endpoint}")
        return UpstreamRequest(self.url(cred), self.headers(cred), payload, stream)

    def reply(self, endpoint: str, raw: bytes, data: Any, model: str) -> Reply:
        usage = anthropic_usage(section(data, "usage"))
        if endpoint == "messages":
            return Reply(raw, usage)
        return Reply(orjson.dumps(message_to_chat(data, model)), usage)

    def streamer(self, endpoint: str, client_wants_usage: bool, model: str):
        if endpoint == "messages":
            return AnthropicStream()
        return AnthropicToChatStream(model, client_wants_usage)


class AnthropicStream:
    """Pass-through of Anthropic SSE (exact bytes), reading usage from message_start (input and
    cache tokens) and message_delta (cumulative output, and any count it repeats)."""

    parse_deltas = False  # a pass-through needs no delta's JSON; a translation does

    def __init__(self) -> None:
        self.decoder = SSEDecoder()
        self.usage = Usage()
        self.text = TextTally()
        self.done = False
        self._raw_usage: dict[str, Any] = {}

    def _observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self._raw_usage = dict(section(section(event, "message"), "usage"))
            self.usage = anthropic_usage(self._raw_usage)
        elif kind == "message_delta":
            self._raw_usage.update(
                {k: v for k, v in section(event, "usage").items() if v is not None}
            )
            self.usage = anthropic_usage(self._raw_usage)
        elif kind == "message_stop":
            self.done = True

    def _events(self, events: list[Event]) -> list[tuple[Event, dict[str, Any] | None]]:
        """Each block with its JSON when it can matter. A `content_block_delta` named by its
        SSE `event:` line is text only (measured, not parsed: deltas are most of a stream)."""
        out: list[tuple[Event, dict[str, Any] | None]] = []
        for event in events:
            if event.data is None:
                out.append((event, None))
                continue
            self.text.add(event.data)
            if event.name == b"content_block_delta" and not self.parse_deltas:
                out.append((event, None))
                continue
            parsed = parse_json(event.data)
            if parsed is not None:
                self._observe(parsed)
            out.append((event, parsed))
        return out

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(event.raw for event, _ in self._events(self.decoder.feed(chunk)))

    def finish(self) -> bytes:
        return b"".join(event.raw for event, _ in self._events(self.decoder.close()))

    def estimated_output_tokens(self) -> int:
        return estimate_tokens(self.text.chars)


class AnthropicToChatStream(AnthropicStream):
    """Anthropic SSE in, OpenAI chat completion chunks out."""

    parse_deltas = True

    def __init__(self, model: str, client_wants_usage: bool) -> None:
        super().__init__()
        self.model = model
        self.client_wants_usage = client_wants_usage
        self.id = "chatcmpl-alephant"
        self.created = int(time.time())
        self.tool_index = -1
        self.block_is_tool: dict[int, bool] = {}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return sse(chunk)

    def feed(self, chunk: bytes) -> bytes:
        return self._translate(self.decoder.feed(chunk))

    def finish(self) -> bytes:
        return self._translate(self.decoder.close())

    def _translate(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for _event, event in self._events(events):
            if event is None:
                continue
            handler = self._HANDLERS.get(str(event.get("type")))
            if handler is not None:
                handler(self, event, out)
        return b"".join(out)

    def _message_start(self, event: dict[str, Any], out: list[bytes]) -> None:
        message_id = str((event.get("message") or {}).get("id", ""))
        self.id = "chatcmpl-" + message_id.removeprefix("msg_")
        out.append(self._chunk({"role": "assistant", "content": ""}))

    def _block_start(self, event: dict[str, Any], out: list[bytes]) -> None:
        block = event.get("content_block") or {}
        is_tool = block.get("type") == "tool_use"
        self.block_is_tool[event.get("index", 0)] = is_tool
        if is_tool:
            self.tool_index += 1
            call = {
                "index": self.tool_index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            out.append(self._chunk({"tool_calls": [call]}))

    def _block_delta(self, event: dict[str, Any], out: list[bytes]) -> None:
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            out.append(self._chunk({"content": delta.get("text", "")}))
        elif delta.get("type") == "input_json_delta":
            fn = {"arguments": delta.get("partial_json", "")}
            out.append(self._chunk({"tool_calls": [{"index": self.tool_index, "function": fn}]}))

    def _message_delta(self, event: dict[str, Any], out: list[bytes]) -> None:
        reason = (event.get("delta") or {}).get("stop_reason")
        out.append(self._chunk({}, STOP_REASONS.get(reason or "", "stop")))

    def _message_stop(self, event: dict[str, Any], out: list[bytes]) -> None:
        if self.client_wants_usage:
            chunk = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": chat_usage(self.usage),
            }
            out.append(sse(chunk))
        out.append(b"data: [DONE]\n\n")

    _HANDLERS = {
        "message_start": _message_start,
        "content_block_start": _block_start,
        "content_block_delta": _block_delta,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
    }
