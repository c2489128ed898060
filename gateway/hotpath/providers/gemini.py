"""Google Gemini (generateContent): OpenAI chat requests translated both ways.

The bodies translate in `translate/gemini.py`; this module sends them and translates the stream.
Output tokens include `thoughtsTokenCount` (billed as output).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.modelnames import url_segment
from gateway.hotpath.providers.base import (
    NO_COMPRESSION,
    Credential,
    Reply,
    UnsupportedRoute,
    UpstreamRequest,
    Usage,
    estimate_tokens,
    section,
    sse,
)
from gateway.hotpath.providers.sse import Event, SSEDecoder, parse_json
from gateway.hotpath.providers.translate.gemini import (
    FINISH,
    candidate_message,
    chat_to_gemini,
    gemini_to_chat,
)
from gateway.hotpath.providers.usage import chat_usage, gemini_usage

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class GeminiAdapter:
    family = "gemini"
    native: frozenset[str] = frozenset()
    translated = frozenset({"chat"})

    def build(
        self,
        endpoint: str,
        body: dict[str, Any],
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
            orjson.dumps(gemini_to_chat(data, model)), gemini_usage(section(data, "usageMetadata"))
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
                self.usage = gemini_usage(event["usageMetadata"])
            candidate = (event.get("candidates") or [{}])[0]
            text, calls = candidate_message(candidate, self.calls)
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
