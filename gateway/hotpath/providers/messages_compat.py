"""Anthropic `/v1/messages` requests served by OpenAI-compatible models (the reverse translation).

So an Anthropic SDK (or a tool built on it) can use any model the workspace has: system ->
system message; text/image blocks -> content parts; tool_use -> tool_calls; tool_result ->
tool messages; finish reasons stop -> end_turn, length -> max_tokens, tool_calls -> tool_use.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.hotpath.providers.base import Usage, estimate_tokens, sse
from gateway.hotpath.providers.openai import usage_from as openai_usage
from gateway.hotpath.providers.sse import Event, SSEDecoder, parse_json

STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or () if isinstance(b, dict)]


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or () if isinstance(b, dict))


def messages_to_chat(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    out_messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out_messages.append({"role": "system", "content": _block_text(system)})
    for msg in body.get("messages") or ():
        role = msg.get("role")
        blocks = _blocks(msg.get("content"))
        if role == "assistant":
            text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
            calls = [
                {
                    "id": b.get("id"),
                    "type": "function",
                    "function": {
                        "name": b.get("name"),
                        "arguments": orjson.dumps(b.get("input") or {}).decode(),
                    },
                }
                for b in blocks
                if b.get("type") == "tool_use"
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            out_messages.append(entry)
            continue
        parts: list[dict[str, Any]] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "tool_result":
                out_messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": block.get("tool_use_id"),
                        "content": _block_text(block.get("content")),
                    }
                )
            elif kind == "text":
                parts.append({"type": "text", "text": block.get("text", "")})
            elif kind == "image":
                source = block.get("source") or {}
                url = (
                    source.get("url")
                    if source.get("type") == "url"
                    else f"data:{source.get('media_type')};base64,{source.get('data')}"
                )
                parts.append({"type": "image_url", "image_url": {"url": url}})
        if parts:
            out_messages.append({"role": "user", "content": parts})
    out: dict[str, Any] = {
        "model": model,
        "messages": out_messages,
        "max_tokens": int(body.get("max_tokens") or 4096),
    }
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("tools"):
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name"),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object", "properties": {}},
                },
            }
            for t in body["tools"]
        ]
        choice = (body.get("tool_choice") or {}).get("type")
        if choice == "any":
            out["tool_choice"] = "required"
        elif choice == "none":
            out["tool_choice"] = "none"
        elif choice == "tool":
            out["tool_choice"] = {
                "type": "function",
                "function": {"name": body["tool_choice"].get("name")},
            }
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def anthropic_usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens - usage.cached_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": 0,
    }


def chat_to_message(data: dict[str, Any], model: str) -> dict[str, Any]:
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        try:
            args = orjson.loads(fn.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            args = {}
        content.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args}
        )
    return {
        "id": "msg_" + str(data.get("id", "")).removeprefix("chatcmpl-"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": anthropic_usage(openai_usage("chat", data)),
    }


class ChatToAnthropicStream:
    """OpenAI chat chunks in, Anthropic message events out."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.decoder = SSEDecoder()
        self.usage = Usage()
        self.text_chars = 0
        self.done = False
        self.started = False
        self.block = -1
        self.block_kind: str | None = None
        self.tool_blocks: dict[int, int] = {}  # OpenAI tool index -> our block index
        self.stop: str | None = None

    def _start(self, out: list[bytes]) -> None:
        if not self.started:
            self.started = True
            message: dict[str, Any] = {
                "id": f"msg_alephant{int(time.time() * 1000)}",
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
            out.append(sse({"type": "message_start", "message": message}, "message_start"))

    def _close_block(self, out: list[bytes]) -> None:
        if self.block_kind is not None:
            out.append(
                sse({"type": "content_block_stop", "index": self.block}, "content_block_stop")
            )
            self.block_kind = None

    def _open(self, out: list[bytes], kind: str, block: dict[str, Any]) -> None:
        self._close_block(out)
        self.block += 1
        self.block_kind = kind
        out.append(
            sse(
                {"type": "content_block_start", "index": self.block, "content_block": block},
                "content_block_start",
            )
        )

    def feed(self, chunk: bytes) -> bytes:
        return self._translate(self.decoder.feed(chunk))

    def _translate(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for sse_event in events:
            if sse_event.is_done:
                self._finish(out)
                continue
            event = parse_json(sse_event.data)
            if event is None:
                continue
            self._start(out)
            usage = openai_usage("chat", event)
            if usage.reported:
                self.usage = usage
            for choice in event.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    if self.block_kind != "text":
                        self._open(out, "text", {"type": "text", "text": ""})
                    self.text_chars += len(delta["content"])
                    out.append(
                        sse(
                            {
                                "type": "content_block_delta",
                                "index": self.block,
                                "delta": {"type": "text_delta", "text": delta["content"]},
                            },
                            "content_block_delta",
                        )
                    )
                for call in delta.get("tool_calls") or ():
                    index = call.get("index", 0)
                    fn = call.get("function") or {}
                    if index not in self.tool_blocks:
                        self._open(
                            out,
                            "tool",
                            {
                                "type": "tool_use",
                                "id": call.get("id"),
                                "name": fn.get("name"),
                                "input": {},
                            },
                        )
                        self.tool_blocks[index] = self.block
                    if fn.get("arguments"):
                        self.text_chars += len(fn["arguments"])
                        out.append(
                            sse(
                                {
                                    "type": "content_block_delta",
                                    "index": self.tool_blocks[index],
                                    "delta": {
                                        "type": "input_json_delta",
                                        "partial_json": fn["arguments"],
                                    },
                                },
                                "content_block_delta",
                            )
                        )
                if choice.get("finish_reason"):
                    self.stop = STOP.get(choice["finish_reason"], "end_turn")
        return b"".join(out)

    def _finish(self, out: list[bytes]) -> None:
        if self.done:
            return
        self._start(out)
        self._close_block(out)
        out.append(
            sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop or "end_turn", "stop_sequence": None},
                    "usage": anthropic_usage(self.usage),
                },
                "message_delta",
            )
        )
        out.append(sse({"type": "message_stop"}, "message_stop"))
        self.done = True

    def finish(self) -> bytes:
        return self._translate(self.decoder.close())

    def estimated_output_tokens(self) -> int:
        return estimate_tokens(self.text_chars)
