"""OpenAI and every OpenAI-compatible family: requests pass through, usage is read on the way.

Streaming chat/completions ask the provider for usage (`stream_options.include_usage`); the
usage-only chunk is removed again when the client did not ask for it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from core.modelnames import url_segment
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
)
from gateway.hotpath.providers.messages_compat import ChatToAnthropicStream
from gateway.hotpath.providers.sse import (
    DONE,
    Event,
    SSEDecoder,
    TextTally,
    may_name,
    parse_json,
)
from gateway.hotpath.providers.translate.anthropic import chat_to_message, messages_to_chat
from gateway.hotpath.providers.usage import openai_usage

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


class OpenAIAdapter:
    """Native OpenAI wire format. Subclassed by Azure; used as is by compatible families."""

    native = frozenset({"chat", "completions", "embeddings", "responses"})
    # Anthropic requests, via translate/anthropic.py and messages_compat.py
    translated = frozenset({"messages"})

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
        headers = {
            "authorization": "Bearer " + cred.secret,
            "content-type": "application/json",
            **NO_COMPRESSION,
        }
        if cred.organization:
            headers["openai-organization"] = cred.organization
        return headers

    def build(
        self,
        endpoint: str,
        body: dict[str, Any],
        model: str,
        cred: Credential,
        stream: bool,
    ) -> UpstreamRequest:
        if endpoint == "messages":
            chat = messages_to_chat(body, model, stream)
            if self.family in NO_STREAM_OPTIONS:
                chat.pop("stream_options", None)
            return UpstreamRequest(
                self.url("chat", model, cred), self.headers(cred), orjson.dumps(chat), stream
            )
        if endpoint not in self.native:
            raise UnsupportedRoute(f"{self.family} does not serve /{endpoint}")
        if body.get("model") != model:
            body = {**body, "model": model}
        if stream and endpoint in ("chat", "completions") and self.family not in NO_STREAM_OPTIONS:
            options = body.get("stream_options") or {}
            if not options.get("include_usage"):
                body = {**body, "stream_options": {**options, "include_usage": True}}
        return UpstreamRequest(
            self.url(endpoint, model, cred), self.headers(cred), dumps(body), stream
        )

    def reply(self, endpoint: str, raw: bytes, data: Any, model: str) -> Reply:
        if endpoint == "messages":
            return Reply(orjson.dumps(chat_to_message(data, model)), openai_usage("chat", data))
        return Reply(raw, openai_usage(endpoint, data))

    def streamer(self, endpoint: str, client_wants_usage: bool, model: str) -> Any:
        if endpoint == "messages":
            return ChatToAnthropicStream(model)
        added = (
            not client_wants_usage
            and endpoint in ("chat", "completions")
            and self.family not in NO_STREAM_OPTIONS
        )
        return OpenAIStream(endpoint, client_wants_usage, added_usage=added)


_TEXT_KEYS = ("content", "text", "refusal", "reasoning_content", "reasoning")


def _choices_text(choices: Any) -> int:
    """Characters produced in a chunk's choices (the estimate when no usage ever comes)."""
    total = 0
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        part = delta if isinstance(delta, dict) else choice
        for key in _TEXT_KEYS:
            value = part.get(key)
            if isinstance(value, str):
                total += len(value)
        calls = part.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(args, str):
                total += len(args)
    return total


TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def _next_named(chunk: bytes, start: int) -> int:
    """Where the next byte string that may name `usage` begins (`sse.may_name`), or past the end.
    A `\\u` is found through its backslash (a one-byte find is a memchr, ~10x faster than a
    two-byte one), so escaped quotes and newlines in the text cost little."""
    word = chunk.find(b"usage", start)
    limit = word if word >= 0 else len(chunk)
    at = chunk.find(b"\\", start, limit)
    while at >= 0:
        if chunk[at + 1 : at + 2] == b"u":
            return at
        at = chunk.find(b"\\", at + 1, limit)
    return limit


class OpenAIStream:
    """Pass-through of an OpenAI-format SSE stream, reading usage on the way.

    The client receives the upstream's exact bytes, minus one thing Alephant added: the
    usage-only chunk (empty `choices`) when Alephant asked for usage and the client did not.
    Only events that can name `usage` are parsed (see `sse.may_name`); usage placements of the
    compatible families are all read: a final chunk with empty `choices` (OpenAI, OpenRouter,
    vLLM, Ollama), usage on the last chunk with choices (Mistral, vLLM), `x_groq.usage` (Groq),
    cumulative usage on every chunk (vLLM continuous stats: the last one wins).
    """

    def __init__(
        self, endpoint: str, client_wants_usage: bool, *, added_usage: bool | None = None
    ) -> None:
        self.endpoint = endpoint
        self.client_wants_usage = client_wants_usage
        self.strip_usage = not client_wants_usage if added_usage is None else added_usage
        self.decoder = SSEDecoder()
        self.usage = Usage()
        self.text = TextTally()  # raw text of the events not parsed (measured if ever needed)
        self.text_chars = 0  # text counted in the parsed events
        self.done = False  # saw the end marker ([DONE] or a terminal responses event)

    def feed(self, chunk: bytes) -> bytes:
        if b"\r" not in chunk and self.decoder.at_boundary(chunk):
            return self._feed_blocks(chunk)
        return self._relay(self.decoder.feed(chunk))

    def _feed_blocks(self, chunk: bytes) -> bytes:
        """The common wire shape, read without building events: the chunk starts at a block
        boundary and its blocks are one `data: ` line each, `\n`-terminated. Same decisions as
        `_relay` on the same data bytes (it is the reference: `test_openai_stream_fast_path`);
        the first block of any other shape, and a block cut by the read, go to the decoder."""
        pos, size, find = 0, len(chunk), chunk.find
        kept: list[bytes] | None = None  # set only once an event is dropped
        start = 0  # start of the bytes kept since the last dropped event
        plain: list[bytes] = []  # events that cannot name usage: text for the estimate only
        # `may_name` over the whole chunk at once (a `bytes in` per event costs ~0.6 us): an
        # event that ends before the next `usage` or `\\u` in the chunk cannot name usage.
        named = _next_named(chunk, 0)
        while chunk.startswith(b"data: ", pos):
            end = find(b"\n", pos)
            if end < 0 or end + 1 >= size or chunk[end + 1] != 10:
                break  # cut by the read, or a second line in the block: the decoder's case
            data = chunk[pos + 6 : end]
            if end > named:
                named = _next_named(chunk, end)
                if not self._read(data):
                    if kept is None:
                        kept = []
                    kept.append(chunk[start:pos])
                    start = end + 2
            elif len(data) < 16 and data.strip() == DONE:
                self.done = True
            else:
                plain.append(data)
            pos = end + 2
        if plain:
            self.text.extend(plain)
        rest = self._relay(self.decoder.feed(chunk[pos:])) if pos < size else b""
        if kept is None:
            return chunk[:pos] + rest if rest else chunk[:pos]
        kept.append(chunk[start:pos])
        kept.append(rest)
        return b"".join(kept)

    def finish(self) -> bytes:
        return self._relay(self.decoder.close())

    def _relay(self, events: list[Event]) -> bytes:
        out = []
        for event in events:
            if event.data is None:
                out.append(event.raw)  # comments and keep-alives pass unchanged
            elif event.is_done:
                self.done = True
                out.append(event.raw)
            elif self._observe(event.data):
                out.append(event.raw)
        return b"".join(out)

    def _observe(self, data: bytes) -> bool:
        """Read one event; False when it is the usage chunk to drop."""
        if not may_name(data, b"usage"):
            self.text.add(data)
            return True
        return self._read(data)

    def _read(self, data: bytes) -> bool:
        """`_observe` of an event that may name usage."""
        event = parse_json(data)
        if event is None:
            self.text.add(data)
            return True
        if self.endpoint == "responses":
            delta = event.get("delta")
            if isinstance(delta, str):
                self.text_chars += len(delta)
            if event.get("type") in TERMINAL:
                self.usage = openai_usage("responses", section(event, "response"))
                self.done = True
            return True
        self.text_chars += _choices_text(event.get("choices"))
        usage = openai_usage(self.endpoint, event)
        if not usage.reported:
            return True
        self.usage = usage
        return not (self.strip_usage and not event.get("choices"))

    def estimated_output_tokens(self) -> int:
        return estimate_tokens(self.text_chars + self.text.chars)


class AzureOpenAIAdapter(OpenAIAdapter):
    """Azure OpenAI: deployments in the path, `api-version` in the query, `api-key` header."""

    DEFAULT_API_VERSION = "2024-10-21"

    def __init__(self) -> None:
        super().__init__("azure-openai")
        self.native = frozenset({"chat", "completions", "embeddings"})

    def url(self, endpoint: str, model: str, cred: Credential) -> str:
        base = self.base_url(cred)
        version = cred.api_version or self.DEFAULT_API_VERSION
        # The deployment is one percent-encoded segment and the version a query value: neither
        # can add a path, another query parameter or a fragment.
        deployment = url_segment(model)
        query = urlencode({"api-version": version})
        return f"{base}/openai/deployments/{deployment}{PATHS[endpoint]}?{query}"

    def headers(self, cred: Credential) -> dict[str, str]:
        return {"api-key": cred.secret, "content-type": "application/json", **NO_COMPRESSION}
