"""OpenAI and every OpenAI-compatible family: requests pass through, usage is read on the way.

Streaming chat/completions ask the provider for usage (`stream_options.include_usage`); the
usage-only chunk is removed again when the client did not ask for it.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.hotpath.providers.base import (
    Credential,
    Reply,
    SSEParser,
    UnsupportedRoute,
    UpstreamRequest,
    Usage,
    estimate_tokens,
)

PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
}

# Families whose endpoint is public; the others (ollama, vllm, openai-compatible) need base_url.
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "groq": "https://api.groq.com/openai/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "xai": "https://api.x.ai/v1",
    "together": "https://api.together.xyz/v1",
    "fireworks": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "ollama": "http://127.0.0.1:11434/v1",
}
# Families that reject or ignore `stream_options` (their last chunk carries usage anyway).
NO_STREAM_OPTIONS = frozenset({"mistral"})


def usage_from(endpoint: str, data: Any) -> Usage:
    usage = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(usage, dict):
        return Usage()
    if endpoint == "responses":
        details_in = usage.get("input_tokens_details") or {}
        details_out = usage.get("output_tokens_details") or {}
        return Usage(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cached_tokens=int(details_in.get("cached_tokens") or 0),
            reasoning_tokens=int(details_out.get("reasoning_tokens") or 0),
            reported=True,
        )
    details_in = usage.get("prompt_tokens_details") or {}
    details_out = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(details_in.get("cached_tokens") or 0),
        reasoning_tokens=int(details_out.get("reasoning_tokens") or 0),
        reported=True,
    )


class OpenAIAdapter:
    """Native OpenAI wire format. Subclassed by Azure; used as is by compatible families."""

    native = frozenset({"chat", "completions", "embeddings", "responses"})
    translated = frozenset(
        {"messages"}
    )  # Anthropic requests, via gateway/hotpath/providers/messages_compat.py

    def __init__(self, family: str = "openai") -> None:
        self.family = family

    def base_url(self, cred: Credential) -> str:
        base = cred.base_url or DEFAULT_BASE_URLS.get(self.family)
        if not base:
            raise UnsupportedRoute(f"credential {cred.name!r} has no base URL")
        return base.rstrip("/")

    def url(self, endpoint: str, model: str, cred: Credential) -> str:
        return self.base_url(cred) + PATHS[endpoint]

    def headers(self, cred: Credential) -> dict[str, str]:
        headers = {"authorization": "Bearer " + cred.secret, "content-type": "application/json"}
        if cred.organization:
            headers["openai-organization"] = cred.organization
        return headers

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
            from gateway.hotpath.providers.messages_compat import messages_to_chat

            chat = messages_to_chat(body, model, stream)
            if self.family in NO_STREAM_OPTIONS:
                chat.pop("stream_options", None)
            return UpstreamRequest(
                self.url("chat", model, cred), self.headers(cred), orjson.dumps(chat), stream
            )
        if endpoint not in self.native:
            raise UnsupportedRoute(f"{self.family} does not serve /{endpoint}")
        changed = body.get("model") != model
        if changed:
            body = {**body, "model": model}
        if stream and endpoint in ("chat", "completions") and self.family not in NO_STREAM_OPTIONS:
            options = body.get("stream_options") or {}
            if not options.get("include_usage"):
                body = {**body, "stream_options": {**options, "include_usage": True}}
                changed = True
        payload = orjson.dumps(body) if changed else raw
        return UpstreamRequest(self.url(endpoint, model, cred), self.headers(cred), payload, stream)

    def reply(self, endpoint: str, raw: bytes, data: Any, model: str) -> Reply:
        if endpoint == "messages":
            from gateway.hotpath.providers.messages_compat import chat_to_message

            return Reply(orjson.dumps(chat_to_message(data, model)), usage_from("chat", data))
        return Reply(raw, usage_from(endpoint, data))

    def streamer(self, endpoint: str, client_wants_usage: bool, model: str) -> Any:
        if endpoint == "messages":
            from gateway.hotpath.providers.messages_compat import ChatToAnthropicStream

            return ChatToAnthropicStream(model)
        return OpenAIStream(endpoint, client_wants_usage)


_TEXT_FIELDS = (b'"content":"', b'"text":"', b'"arguments":"')


def _text_len(data: bytes) -> int:
    """Length of the text fields of a chunk, roughly (escaped quotes end it early)."""
    total = 0
    for field in _TEXT_FIELDS:
        start = data.find(field)
        while start >= 0:
            start += len(field)
            end = data.find(b'"', start)
            if end < 0:
                break
            total += end - start
            start = data.find(field, end)
    return total


class OpenAIStream:
    """Pass-through of an OpenAI SSE stream, reading usage and counting produced text."""

    def __init__(self, endpoint: str, client_wants_usage: bool) -> None:
        self.endpoint = endpoint
        self.client_wants_usage = client_wants_usage
        self.parser = SSEParser()
        self.usage = Usage()
        self.text_chars = 0
        self.done = False  # saw the end marker ([DONE] or response.completed)

    def feed(self, chunk: bytes) -> bytes:
        out = []
        for _name, data, raw in self.parser.feed(chunk):
            if data == b"[DONE]":
                self.done = True
                out.append(raw + b"\n\n")
                continue
            if self.endpoint != "responses" and b'"usage":{' not in data:
                # Fast path for content chunks: no JSON parse, just measure the produced text
                # (only used as an estimate if the stream never reports usage).
                self.text_chars += _text_len(data)
                out.append(raw + b"\n\n")
                continue
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError:
                out.append(raw + b"\n\n")
                continue
            if not isinstance(event, dict):
                out.append(raw + b"\n\n")
                continue
            if self.endpoint == "responses":
                kind = event.get("type")
                if kind == "response.output_text.delta":
                    self.text_chars += len(event.get("delta") or "")
                elif kind in ("response.completed", "response.incomplete", "response.failed"):
                    self.usage = usage_from("responses", event.get("response") or {})
                    self.done = True
                out.append(raw + b"\n\n")
                continue
            if event.get("usage"):
                self.usage = usage_from(self.endpoint, event)
                if not event.get("choices") and not self.client_wants_usage:
                    continue  # the usage chunk we asked for; the client did not
            for choice in event.get("choices") or ():
                delta = choice.get("delta") or {}
                text = delta.get("content") if self.endpoint == "chat" else choice.get("text")
                if text:
                    self.text_chars += len(text)
                for call in delta.get("tool_calls") or ():
                    self.text_chars += len((call.get("function") or {}).get("arguments") or "")
            out.append(raw + b"\n\n")
        return b"".join(out)

    def finish(self) -> bytes:
        return b""

    def estimated_output_tokens(self) -> int:
        return estimate_tokens(self.text_chars)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: deployments in the path, `api-version` in the query, `api-key` header."""

    DEFAULT_API_VERSION = "2024-10-21"

    def __init__(self) -> None:
        super().__init__("azure-openai")
        self.native = frozenset({"chat", "completions", "embeddings"})

    def url(self, endpoint: str, model: str, cred: Credential) -> str:
        base = self.base_url(cred)
        version = cred.api_version or self.DEFAULT_API_VERSION
        return f"{base}/openai/deployments/{model}{PATHS[endpoint]}?api-version={version}"

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"api-key": cred.secret, "content-type": "application/json"}
