"""Google Gemini (generateContent): OpenAI chat requests translated both ways.

system -> `systemInstruction`; assistant tool calls -> `functionCall` parts; tool results ->
`functionResponse` parts (the function name is looked up from the assistant's earlier call);
finishReason STOP -> stop (tool_calls when the answer is a function call), MAX_TOKENS -> length,
SAFETY/RECITATION -> content_filter. Output tokens include `thoughtsTokenCount` (billed as output).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.modelnames import url_segment
from gateway.hotpath.providers.anthropic import chat_usage
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
from gateway.hotpath.providers.sse import Event, SSEDecoder, parse_json

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
}


def usage_from(meta: dict[str, Any] | None) -> Usage:
    if not isinstance(meta, dict):
        return Usage()
    thoughts = count(meta.get("thoughtsTokenCount"))
    prompt = count(meta.get("promptTokenCount")) + count(meta.get("toolUsePromptTokenCount"))
    return Usage(
        # Tool-use prompt tokens (code execution, search results fed back) bill as input.
        input_tokens=prompt,
        output_tokens=count(meta.get("candidatesTokenCount")) + thoughts,
        cached_tokens=min(count(meta.get("cachedContentTokenCount")), prompt),
        reasoning_tokens=thoughts,
        reported=True,
    )


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    parts = []
    for part in content or ():
        if part.get("type") == "text":
            parts.append({"text": part.get("text", "")})
        elif part.get("type") == "image_url":
            url = (part.get("image_url") or {}).get("url", "")
            if url.startswith("data:") and ";base64," in url:
                mime, data = url[5:].split(";base64,", 1)
                parts.append({"inlineData": {"mimeType": mime, "data": data}})
            else:
                parts.append({"fileData": {"fileUri": url}})
    return parts


def chat_to_gemini(body: dict[str, Any]) -> dict[str, Any]:
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for msg in body.get("messages") or ():
        role = msg.get("role")
        if role in ("system", "developer"):
            system.append(content_text(msg.get("content")))
        elif role == "user":
            add("user", _parts(msg.get("content")))
        elif role == "assistant":
            parts: list[dict[str, Any]] = []
            text = content_text(msg.get("content"))
            if text:
                parts.append({"text": text})
            for call in msg.get("tool_calls") or ():
                fn = call.get("function") or {}
                call_names[call.get("id", "")] = fn.get("name", "")
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = {}
                parts.append({"functionCall": {"name": fn.get("name"), "args": args}})
            add("model", parts or [{"text": ""}])
        elif role == "tool":
            name = call_names.get(msg.get("tool_call_id", ""), "tool")
            add(
                "user",
                [
                    {
                        "functionResponse": {
                            "name": name,
                            "response": {"content": content_text(msg.get("content"))},
                        }
                    }
                ],
            )
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = int(max_tokens)
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if config:
        out["generationConfig"] = config
    if body.get("tools"):
        out["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": t["function"]["name"],
                        "description": t["function"].get("description", ""),
                        **(
                            {"parameters": t["function"]["parameters"]}
                            if t["function"].get("parameters")
                            else {}
                        ),
                    }
                    for t in body["tools"]
                    if t.get("type") == "function"
                ]
            }
        ]
        choice = body.get("tool_choice")
        mode = (
            {"required": "ANY", "none": "NONE", "auto": "AUTO"}.get(choice)
            if isinstance(choice, str)
            else None
        )
        if isinstance(choice, dict):
            out["toolConfig"] = {
                "functionCallingConfig": {
                    "mode": "ANY",
                    "allowedFunctionNames": [(choice.get("function") or {}).get("name")],
                }
            }
        elif mode:
            out["toolConfig"] = {"functionCallingConfig": {"mode": mode}}
    return out


def _candidate_message(
    candidate: dict[str, Any], call_offset: int = 0
) -> tuple[str, list[dict[str, Any]]]:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if "text" in part and not part.get("thought"):
            text.append(part["text"])
        elif "functionCall" in part:
            fc = part["functionCall"]
            calls.append(
                {
                    "id": f"call_{call_offset + len(calls)}",
                    "type": "function",
                    "function": {
                        "name": fc.get("name"),
                        "arguments": orjson.dumps(fc.get("args") or {}).decode(),
                    },
                }
            )
    return "".join(text), calls


def gemini_to_chat(data: dict[str, Any], model: str) -> dict[str, Any]:
    candidate = (data.get("candidates") or [{}])[0]
    text, calls = _candidate_message(candidate)
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
        "usage": chat_usage(usage_from(section(data, "usageMetadata"))),
    }


class GeminiAdapter:
    family = "gemini"
    native: frozenset[str] = frozenset()
    translated = frozenset({"chat"})

    def build(
        self,
        endpoint: str,
        body: dict[str, Any],
        raw: bytes,
        model: str,
        cred: Credential,
        stream: bool,
    ) -> UpstreamRequest:
        if endpoint != "chat":
            raise UnsupportedRoute(f"Gemini models do not serve /{endpoint} here")
        base = (cred.base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1beta")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        # One percent-encoded segment: a model name can never add a path, query or fragment.
        url = f"{base}/v1beta/models/{url_segment(model)}:{method}"
        headers = {
            "x-goog-api-key": cred.secret,
            "content-type": "application/json",
            **NO_COMPRESSION,
        }
        return UpstreamRequest(url, headers, orjson.dumps(chat_to_gemini(body)), stream)

    def reply(self, endpoint: str, raw: bytes, data: Any, model: str) -> Reply:
        return Reply(
            orjson.dumps(gemini_to_chat(data, model)), usage_from(section(data, "usageMetadata"))
        )

    def streamer(self, endpoint: str, client_wants_usage: bool, model: str) -> GeminiToChatStream:
        return GeminiToChatStream(model, client_wants_usage)


class GeminiToChatStream:
    def __init__(self, model: str, client_wants_usage: bool) -> None:
        self.model = model
        self.client_wants_usage = client_wants_usage
        self.decoder = SSEDecoder()
        self.usage = Usage()
        self.text_chars = 0
        self.done = False
        self.started = False
        self.calls = 0
        self.created = int(time.time())
        self.id = "chatcmpl-gemini"

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    def feed(self, chunk: bytes) -> bytes:
        return self._translate(self.decoder.feed(chunk))

    def _translate(self, events: list[Event]) -> bytes:
        out = []
        for sse_event in events:
            event = parse_json(sse_event.data)
            if event is None:
                continue
            if not self.started:
                self.started = True
                out.append(self._chunk({"role": "assistant", "content": ""}))
            # Every chunk may repeat usageMetadata (cumulative): the last one wins.
            if section(event, "usageMetadata"):
                self.usage = usage_from(event["usageMetadata"])
            candidate = (event.get("candidates") or [{}])[0]
            text, calls = _candidate_message(candidate, self.calls)
            if text:
                self.text_chars += len(text)
                out.append(self._chunk({"content": text}))
            for call in calls:
                self.text_chars += len(call["function"]["arguments"])
                out.append(self._chunk({"tool_calls": [{"index": self.calls, **call}]}))
                self.calls += 1
            reason = candidate.get("finishReason")
            if reason:
                finish = "tool_calls" if self.calls else FINISH.get(reason, "stop")
                out.append(self._chunk({}, finish))
                self.done = True
        return b"".join(out)

    def finish(self) -> bytes:
        out = self._translate(self.decoder.close())
        if self.client_wants_usage and self.done:
            out += sse(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": chat_usage(self.usage),
                }
            )
        return out + b"data: [DONE]\n\n"

    def estimated_output_tokens(self) -> int:
        return estimate_tokens(self.text_chars)
