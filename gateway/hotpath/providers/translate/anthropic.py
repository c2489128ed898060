"""OpenAI chat <-> Anthropic messages, both ways.

An OpenAI client on an Anthropic model (`chat_to_messages` / `message_to_chat`): system and
developer messages -> `system`; tool calls -> `tool_use` blocks; tool results -> `tool_result`
blocks in a user turn; consecutive turns of one role are merged; stop reasons
end_turn/stop_sequence -> stop, max_tokens -> length, tool_use -> tool_calls.

An Anthropic client on an OpenAI-compatible model (`messages_to_chat` / `chat_to_message`):
system -> system message; text/image blocks -> content parts; tool_use -> tool_calls;
tool_result -> tool messages; finish reasons stop -> end_turn, length -> max_tokens,
tool_calls -> tool_use.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.hotpath.providers.base import content_text
from gateway.hotpath.providers.translate.common import (
    append_turn,
    dump_arguments,
    parse_arguments,
    split_data_url,
    stop_list,
    wants_json,
)
from gateway.hotpath.providers.usage import (
    anthropic_usage,
    chat_usage,
    messages_usage,
    openai_usage,
)

DEFAULT_MAX_TOKENS = 4096
# Anthropic stop_reason -> OpenAI finish_reason
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
}
# OpenAI finish_reason -> Anthropic stop_reason
STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
EMPTY_SCHEMA = {"type": "object", "properties": {}}


# --- OpenAI client, Anthropic upstream -------------------------------------------------------


def _image_block(url: str) -> dict[str, Any]:
    inline = split_data_url(url)
    if inline:
        media_type, data = inline
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        }
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


def _assistant_blocks(msg: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = content_text(msg.get("content"))
    if text:
        blocks.append({"type": "text", "text": text})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        args = parse_arguments(fn.get("arguments"), {"arguments": fn.get("arguments")})
        blocks.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": args}
        )
    return blocks or [{"type": "text", "text": ""}]


def _chat_turns(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, alternating user/assistant turns) of an OpenAI message list."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for msg in messages or ():
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(content_text(msg.get("content")))
        elif role == "user":
            append_turn(turns, "user", "content", _user_blocks(msg.get("content")))
        elif role == "assistant":
            append_turn(turns, "assistant", "content", _assistant_blocks(msg))
        elif role == "tool":
            result = {
                "type": "tool_result",
                "tool_use_id": msg.get("tool_call_id"),
                "content": content_text(msg.get("content")),
            }
            append_turn(turns, "user", "content", [result])
    return system, turns


def _anthropic_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    out["tools"] = [
        {
            "name": t["function"]["name"],
            "description": t["function"].get("description", ""),
            "input_schema": t["function"].get("parameters") or EMPTY_SCHEMA,
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
        out["tool_choice"] = {"type": "tool", "name": (choice.get("function") or {}).get("name")}


def chat_to_messages(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """OpenAI chat completion request -> Anthropic messages request."""
    system, turns = _chat_turns(body.get("messages"))
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model, "messages": turns, "max_tokens": int(max_tokens)}
    if wants_json(body):
        system.append("Respond with a single valid JSON object and nothing else.")
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop"):
        out["stop_sequences"] = stop_list(body["stop"])
    if body.get("tools"):
        _anthropic_tools(body, out)
    if body.get("user"):
        out["metadata"] = {"user_id": str(body["user"])}
    if stream:
        out["stream"] = True
    return out


def message_to_chat(data: dict[str, Any], model: str) -> dict[str, Any]:
    """Anthropic message -> OpenAI chat completion."""
    text_parts, calls = [], []
    for block in data.get("content") or ():
        if block.get("type") == "text":
            text_parts.append(block.get("text", ""))
        elif block.get("type") == "tool_use":
            fn = {"name": block.get("name"), "arguments": dump_arguments(block.get("input"))}
            calls.append({"id": block.get("id"), "type": "function", "function": fn})
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(text_parts) or None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    finish = STOP_REASONS.get(data.get("stop_reason") or "", "stop")
    return {
        "id": "chatcmpl-" + str(data.get("id", "")).removeprefix("msg_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": chat_usage(anthropic_usage(data.get("usage"))),
    }


# --- Anthropic client, OpenAI-compatible upstream --------------------------------------------


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or () if isinstance(b, dict)]


def _block_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or () if isinstance(b, dict))


def _assistant_message(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": dump_arguments(b.get("input"))},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    entry: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        entry["tool_calls"] = calls
    return entry


def _image_part(source: dict[str, Any]) -> dict[str, Any]:
    if source.get("type") == "url":
        url = source.get("url")
    else:
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
    return {"type": "image_url", "image_url": {"url": url}}


def _user_messages(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A user turn's tool results (as tool messages, first) and its text and images."""
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "tool_result":
            content = _block_text(block.get("content"))
            out.append(
                {"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": content}
            )
        elif kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append(_image_part(block.get("source") or {}))
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _chat_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    out["tools"] = [
        {
            "type": "function",
            "function": {
                "name": t.get("name"),
                "description": t.get("description", ""),
                "parameters": t.get("input_schema") or EMPTY_SCHEMA,
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
        name = body["tool_choice"].get("name")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}


def messages_to_chat(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """Anthropic messages request -> OpenAI chat completion request."""
    messages: list[dict[str, Any]] = []
    if body.get("system"):
        messages.append({"role": "system", "content": _block_text(body["system"])})
    for msg in body.get("messages") or ():
        blocks = _blocks(msg.get("content"))
        if msg.get("role") == "assistant":
            messages.append(_assistant_message(blocks))
        else:
            messages.extend(_user_messages(blocks))
    out: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": int(body.get("max_tokens") or DEFAULT_MAX_TOKENS),
    }
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    if body.get("tools"):
        _chat_tools(body, out)
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def chat_to_message(data: dict[str, Any], model: str) -> dict[str, Any]:
    """OpenAI chat completion -> Anthropic message."""
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        args = parse_arguments(fn.get("arguments"), {})
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
        "usage": messages_usage(openai_usage("chat", data)),
    }
