"""Anthropic `/v1/messages` streams served by OpenAI-compatible models (the reverse translation).

So an Anthropic SDK (or a tool built on it) can use any model the workspace has. The bodies
translate in `translate/anthropic.py` (`messages_to_chat` / `chat_to_message`); this module
turns OpenAI chat chunks into Anthropic message events.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.hotpath.providers.base import Usage, estimate_tokens, sse
from gateway.hotpath.providers.sse import Event, SSEDecoder, parse_json
from gateway.hotpath.providers.translate.anthropic import STOP
from gateway.hotpath.providers.usage import messages_usage, openai_usage


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
                self._choice(choice, out)
        return b"".join(out)

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta") or {}
        if delta.get("content"):
            if self.block_kind != "text":
                self._open(out, "text", {"type": "text", "text": ""})
            self.text_chars += len(delta["content"])
            text = {"type": "text_delta", "text": delta["content"]}
            out.append(_block_delta(self.block, text))
        for call in delta.get("tool_calls") or ():
            self._tool_call(call, out)
        if choice.get("finish_reason"):
            self.stop = STOP.get(choice["finish_reason"], "end_turn")

    def _tool_call(self, call: dict[str, Any], out: list[bytes]) -> None:
        index = call.get("index", 0)
        fn = call.get("function") or {}
        if index not in self.tool_blocks:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id"),
                "name": fn.get("name"),
                "input": {},
            }
            self._open(out, "tool", block)
            self.tool_blocks[index] = self.block
        if fn.get("arguments"):
            self.text_chars += len(fn["arguments"])
            json_delta = {"type": "input_json_delta", "partial_json": fn["arguments"]}
            out.append(_block_delta(self.tool_blocks[index], json_delta))

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
                    "usage": messages_usage(self.usage),
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


def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
    event = {"type": "content_block_delta", "index": index, "delta": delta}
    return sse(event, "content_block_delta")
