"""OpenAI chat <-> Gemini generateContent.

system -> `systemInstruction`; assistant tool calls -> `functionCall` parts; tool results ->
`functionResponse` parts (the function name is looked up from the assistant's earlier call);
finishReason STOP -> stop (tool_calls when the answer is a function call), MAX_TOKENS -> length,
SAFETY/RECITATION -> content_filter.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.hotpath.providers.base import content_text, section
from gateway.hotpath.providers.translate.common import (
    append_turn,
    dump_arguments,
    parse_arguments,
    split_data_url,
    stop_list,
    wants_json,
)
from gateway.hotpath.providers.usage import chat_usage, gemini_usage

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
}
TOOL_MODES = {"required": "ANY", "none": "NONE", "auto": "AUTO"}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts = []
    for part in content or ():
        if part.get("type") == "text":
            parts.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            inline = split_data_url(url)
            if inline:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                parts.append({"fileData": {"fileUri": url}})
    return parts


def _model_parts(msg: dict[str, Any], call_names: dict[str, str]) -> list[dict[str, Any]]:
    """An assistant message's parts; remembers each call's name for the tool result after it."""
    parts: list[dict[str, Any]] = []
    text = content_text(msg.get("content"))
    if text:
        parts.append({"text": text})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") or {}
        call_names[call.get("id", "")] = fn.get("name", "")
        args = parse_arguments(fn.get("arguments"), {})
        parts.append({"functionCall": {"name": fn.get("name"), "args": args}})
    return parts or [{"text": ""}]


def _contents(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, alternating user/model contents) of an OpenAI message list."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for msg in messages or ():
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(content_text(msg.get("content")))
        elif role == "user":
            append_turn(contents, "user", "parts", _parts(msg.get("content")))
        elif role == "assistant":
            append_turn(contents, "model", "parts", _model_parts(msg, call_names))
        elif role == "tool":
            name = call_names.get(msg.get("tool_call_id", ""), "tool")
            response = {"content": content_text(msg.get("content"))}
            part = {"functionResponse": {"name": name, "response": response}}
            append_turn(contents, "user", "parts", [part])
    return system, contents


def _generation_config(body: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = int(max_tokens)
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    if body.get("stop"):
        config["stopSequences"] = stop_list(body["stop"])
    if wants_json(body):
        config["responseMimeType"] = "application/json"
    return config


def _declaration(fn: dict[str, Any]) -> dict[str, Any]:
    out = {"name": fn["name"], "description": fn.get("description", "")}
    if fn.get("parameters"):
        out["parameters"] = fn["parameters"]
    return out


def _gemini_tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    declarations = [
        _declaration(t["function"]) for t in body["tools"] if t.get("type") == "function"
    ]
    out["tools"] = [{"functionDeclarations": declarations}]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        config = {"mode": "ANY", "allowedFunctionNames": [name]}
        out["toolConfig"] = {"functionCallingConfig": config}
    elif isinstance(choice, str) and TOOL_MODES.get(choice):
        out["toolConfig"] = {"functionCallingConfig": {"mode": TOOL_MODES[choice]}}


def chat_to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI chat completion request -> Gemini generateContent request."""
    system, contents = _contents(body.get("messages"))
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config = _generation_config(body)
    if config:
        out["generationConfig"] = config
    if body.get("tools"):
        _gemini_tools(body, out)
    return out


def candidate_message(
    candidate: dict[str, Any], call_offset: int = 0
) -> tuple[str, list[dict[str, Any]]]:
    """(text, OpenAI tool calls) of one Gemini candidate; thought parts are left out."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if "text" in part and not part.get("thought"):
            text.append(part["text"])
        elif "functionCall" in part:
            fc = part["functionCall"]
            fn = {"name": fc.get("name"), "arguments": dump_arguments(fc.get("args"))}
            calls.append(
                {"id": f"call_{call_offset + len(calls)}", "type": "function", "function": fn}
            )
    return "".join(text), calls


def gemini_to_chat(data: dict[str, Any], model: str) -> dict[str, Any]:
    """Gemini generateContent answer -> OpenAI chat completion."""
    candidate = (data.get("candidates") or [{}])[0]
    text, calls = candidate_message(candidate)
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    finish = "tool_calls" if calls else FINISH.get(candidate.get("finishReason") or "STOP", "stop")
    return {
        "id": "chatcmpl-" + str(data.get("responseId") or "gemini"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": chat_usage(gemini_usage(section(data, "usageMetadata"))),
    }
