"""Anthropic: `/v1/messages` passes through; OpenAI chat requests are translated both ways.

Translation (`chat_to_messages` / `message_to_chat`, and `AnthropicToChatStream` for SSE):
system and developer messages -> `system`; tool calls -> `tool_use` blocks; tool results ->
`tool_result` blocks in a user turn; consecutive turns of one role are merged; stop reasons
end_turn/stop_sequence -> stop, max_tokens -> length, tool_use -> tool_calls. Usage: Anthropic's
`input_tokens` excludes cache reads and writes, ours includes them.
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
    content_text,
    count,
    estimate_tokens,
    section,
    sse,
)
from gateway.hotpath.providers.sse import Event, SSEDecoder, parse_json, text_length

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}


def usage_from(usage: dict[str, Any] | None) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    cached = count(usage.get("cache_read_input_tokens"))
    written = count(usage.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=count(usage.get("input_tokens")) + cached + written,
        output_tokens=count(usage.get("output_tokens")),
        cached_tokens=cached,
        cache_write_tokens=written,
        reported=True,
    )


def _image_block(url: str) -> dict[str, Any]:
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return {"type": "image", "source": {"type": "base64", "media_type": head, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks = []
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url") or {}
            blocks.append(_image_block(image.get("url", "") if isinstance(image, dict) else image))
    return blocks


def chat_to_messages(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """OpenAI chat completion request -> Anthropic messages request."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})

    for msg in body.get("messages") or ():
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(content_text(msg.get("content")))
        elif role == "user":
            add("user", _user_blocks(msg.get("content")))
        elif role == "assistant":
            blocks: list[dict[str, Any]] = []
            text = content_text(msg.get("content"))
            if text:
                blocks.append({"type": "text", "text": text})
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") or {}
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = {"arguments": fn.get("arguments")}
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": fn.get("name"),
                        "input": args,
                    }
                )
            add("assistant", blocks or [{"type": "text", "text": ""}])
        elif role == "tool":
            add(
                "user",
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": msg.get("tool_call_id"),
                        "content": content_text(msg.get("content")),
                    }
                ],
            )
    out: dict[str, Any] = {
        "model": model,
        "messages": turns,
        "max_tokens": int(
            body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
        ),
    }
    fmt = (body.get("response_format") or {}).get("type")
    if fmt in ("json_object", "json_schema"):
        system.append("Respond with a single valid JSON object and nothing else.")
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(ours) is not None:
            out[theirs] = body[ours]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if body.get("tools"):
        out["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters")
                or {"type": "object", "properties": {}},
            }
            for t in body["tools"]
            if t.get("type") == "function"
        ]
        choice = body.get("tool_choice")
        if choice == "required":
            out["tool_choice"] = {"type": "any"}
        elif choice == "none":
            out["tool_choice"] = {"type": "none"}
        elif isinstance(choice, dict):
            out["tool_choice"] = {
                "type": "tool",
                "name": (choice.get("function") or {}).get("name"),
            }
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if stream:
        out["stream"] = True
    return out


def chat_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def message_to_chat(data: dict[str, Any], model: str) -> dict[str, Any]:
    """Anthropic message -> OpenAI chat completion."""
    text_parts, calls = [], []
    for block in data.get("content") or ():
        if block.get("type") == "text":
            text_parts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": orjson.dumps(block.get("input") or {}).decode(),
                    },
                }
            )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text_parts) or None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    return {
        "id": "chatcmpl-" + str(data.get("id", "")).removeprefix("msg_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": STOP_REASONS.get(data.get("stop_reason") or "", "stop"),
            }
        ],
        "usage": chat_usage(usage_from(data.get("usage"))),
    }


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
        raw: bytes,
        model: str,
        cred: Credential,
        stream: bool,
    ) -> UpstreamRequest:
        if endpoint == "messages":
            payload = raw if body.get("model") == model else orjson.dumps({**body, "model": model})
        elif endpoint == "chat":
            payload = orjson.dumps(chat_to_messages(body, model, stream))
        else:
            raise UnsupportedRoute(f"Anthropic models do not serve /{endpoint}")
        return UpstreamRequest(self.url(cred), self.headers(cred), payload, stream)

    def reply(self, endpoint: str, raw: bytes, data: Any, model: str) -> Reply:
        usage = usage_from(section(data, "usage"))
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
        self.text_chars = 0
        self.done = False
        self._raw_usage: dict[str, Any] = {}

    def _observe(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "message_start":
            self._raw_usage = dict(section(section(event, "message"), "usage"))
            self.usage = usage_from(self._raw_usage)
        elif kind == "message_delta":
            self._raw_usage.update(
                {k: v for k, v in section(event, "usage").items() if v is not None}
            )
            self.usage = usage_from(self._raw_usage)
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
            self.text_chars += text_length(event.data)
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
        return estimate_tokens(self.text_chars)


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
        out = []
        for _event, event in self._events(events):
            if event is None:
                continue
            kind = event.get("type")
            if kind == "message_start":
                self.id = "chatcmpl-" + str(
                    (event.get("message") or {}).get("id", "")
                ).removeprefix("msg_")
                out.append(self._chunk({"role": "assistant", "content": ""}))
            elif kind == "content_block_start":
                block = event.get("content_block") or {}
                is_tool = block.get("type") == "tool_use"
                self.block_is_tool[event.get("index", 0)] = is_tool
                if is_tool:
                    self.tool_index += 1
                    out.append(
                        self._chunk(
                            {
                                "tool_calls": [
                                    {
                                        "index": self.tool_index,
                                        "id": block.get("id"),
                                        "type": "function",
                                        "function": {"name": block.get("name"), "arguments": ""},
                                    }
                                ]
                            }
                        )
                    )
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta":
                    out.append(self._chunk({"content": delta.get("text", "")}))
                elif delta.get("type") == "input_json_delta":
                    out.append(
                        self._chunk(
                            {
                                "tool_calls": [
                                    {
                                        "index": self.tool_index,
                                        "function": {"arguments": delta.get("partial_json", "")},
                                    }
                                ]
                            }
                        )
                    )
            elif kind == "message_delta":
                reason = (event.get("delta") or {}).get("stop_reason")
                out.append(self._chunk({}, STOP_REASONS.get(reason or "", "stop")))
            elif kind == "message_stop":
                if self.client_wants_usage:
                    out.append(
                        sse(
                            {
                                "id": self.id,
                                "object": "chat.completion.chunk",
                                "created": self.created,
                                "model": self.model,
                                "choices": [],
                                "usage": chat_usage(self.usage),
                            }
                        )
                    )
                out.append(b"data: [DONE]\n\n")
        return b"".join(out)
