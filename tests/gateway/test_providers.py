"""Provider adapters without a network: request building, translation both ways, SSE parsing."""

from __future__ import annotations

import json

import orjson
import pytest

from gateway.hotpath.providers import adapter_for
from gateway.hotpath.providers.anthropic import AnthropicToChatStream
from gateway.hotpath.providers.base import Credential, error_from_status, provider_message
from gateway.hotpath.providers.gemini import GeminiToChatStream
from gateway.hotpath.providers.openai import OpenAIStream
from gateway.hotpath.providers.sse import Event, SSEDecoder
from gateway.hotpath.providers.translate.anthropic import chat_to_messages, message_to_chat
from gateway.hotpath.providers.translate.gemini import chat_to_gemini, gemini_to_chat

CRED = Credential(1, "openai", "oai", None, None, "org-1", 30, "sk-secret")
CHAT = {
    "model": "x",
    "messages": [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": 1}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "tool_choice": "required",
    "max_tokens": 99,
    "stop": "END",
    "temperature": 0.2,
}


def test_openai_family_urls_headers_and_stream_usage_injection():
    up = adapter_for("openai").build(
        "chat", {"model": "gpt-4o", "stream": True, "messages": []}, "gpt-4o", CRED, True
    )
    assert up.url == "https://api.openai.com/v1/chat/completions"
    assert up.headers["authorization"] == "Bearer sk-secret"
    assert up.headers["openai-organization"] == "org-1"
    assert orjson.loads(up.body)["stream_options"] == {"include_usage": True}
    raw = b'{"model":"m","messages":[]}'
    assert adapter_for("groq").build("chat", orjson.loads(raw), "m", CRED, False).body == raw
    assert (
        adapter_for("groq")
        .build("chat", {}, "m", CRED, False)
        .url.startswith("https://api.groq.com/openai/v1")
    )
    azure = Credential(2, "azure-openai", "az", "https://r.openai.azure.com", None, None, 30, "k")
    up = adapter_for("azure-openai").build("chat", {"model": "dep"}, "dep", azure, False)
    assert (
        up.url
        == "https://r.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21"
    )
    assert up.headers == {
        "api-key": "k",
        "content-type": "application/json",
        "accept-encoding": "identity",
    }


def test_chat_to_anthropic_messages():
    out = chat_to_messages(CHAT, "claude-x", stream=False)
    assert out["system"] == "be brief" and out["max_tokens"] == 99
    assert out["stop_sequences"] == ["END"] and out["tool_choice"] == {"type": "any"}
    assert out["tools"] == [{"name": "f", "description": "", "input_schema": {"type": "object"}}]
    user, assistant, tool_turn = out["messages"]
    assert user["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
    }
    assert assistant["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}
    ]
    assert tool_turn == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "42"}],
    }


def test_anthropic_message_to_chat_usage_includes_cache():
    data = {
        "id": "msg_1",
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 3,
        },
    }
    chat = message_to_chat(data, "claude-x")
    choice = chat["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] == "hi"
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"q":1}'}
    assert (
        chat["usage"]["prompt_tokens"] == 20
        and chat["usage"]["prompt_tokens_details"]["cached_tokens"] == 7
    )


def _sse(events):
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def test_anthropic_stream_translates_to_chat_chunks_across_chunk_boundaries():
    stream = _sse(
        [
            {
                "type": "message_start",
                "message": {"id": "msg_9", "usage": {"input_tokens": 8, "output_tokens": 1}},
            },
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            },
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            },
            {
                "type": "message_delta",
                "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 2},
            },
            {"type": "message_stop"},
        ]
    )
    translator = AnthropicToChatStream("claude-x", client_wants_usage=True)
    out = b"".join(translator.feed(stream[i : i + 7]) for i in range(0, len(stream), 7))
    events = [line[6:] for line in out.decode().split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        == "Hello"
    )
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 2 and translator.done
    assert translator.usage.input_tokens == 8 and translator.usage.output_tokens == 2


def test_gemini_round_trip():
    out = chat_to_gemini(CHAT)
    assert out["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert out["generationConfig"] == {
        "maxOutputTokens": 99,
        "temperature": 0.2,
        "stopSequences": ["END"],
    }
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    roles = [c["role"] for c in out["contents"]]
    assert roles == ["user", "model", "user"]
    assert out["contents"][2]["parts"][0]["functionResponse"]["name"] == "f"
    reply = gemini_to_chat(
        {
            "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "MAX_TOKENS"}],
            "usageMetadata": {
                "promptTokenCount": 9,
                "candidatesTokenCount": 4,
                "thoughtsTokenCount": 2,
            },
        },
        "gemini-x",
    )
    assert reply["choices"][0]["finish_reason"] == "length"
    assert reply["usage"]["completion_tokens"] == 6  # thoughts are billed as output
    stream = GeminiToChatStream("gemini-x", client_wants_usage=False)
    out_bytes = stream.feed(
        b'data: {"candidates":[{"content":{"parts":[{"text":"a"}]}}]}\r\n\r\n'
        b'data: {"candidates":[{"content":{"parts":[{"text":"b"}]},"finishReason":"STOP"}],'
        b'"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":2}}\r\n\r\n'
    )
    out_bytes += stream.finish()
    assert out_bytes.endswith(b"data: [DONE]\n\n") and b'"usage"' not in out_bytes
    assert stream.usage.output_tokens == 2 and stream.done


def test_openai_stream_strips_usage_chunk_unless_asked():
    chunks = (
        b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'
        b"data: [DONE]\n\n"
    )
    hidden = OpenAIStream("chat", client_wants_usage=False)
    assert b'"prompt_tokens"' not in hidden.feed(chunks) and hidden.usage.input_tokens == 3
    shown = OpenAIStream("chat", client_wants_usage=True)
    assert b'"prompt_tokens"' in shown.feed(chunks) and shown.done


def test_sse_parser_and_error_classification():
    decoder = SSEDecoder()
    assert decoder.feed(b'event: a\ndata: {"x"') == []
    assert decoder.feed(b": 1}\n\n") == [Event(b"a", b'{"x": 1}', b'event: a\ndata: {"x": 1}\n\n')]
    assert (
        error_from_status(429, "slow", "3").retryable
        and error_from_status(429, "", "3").retry_after == "3"
    )
    assert error_from_status(503, "down").status == 502 and error_from_status(503, "").retryable
    assert (
        error_from_status(401, "bad key").status == 502 and not error_from_status(401, "").retryable
    )
    assert error_from_status(400, "bad").status == 400
    assert provider_message(b'{"error":{"message":"nope"}}') == "nope"
    assert provider_message(b"<html>secret stack</html>") == "the provider returned an error"


def test_credential_repr_hides_the_secret():
    assert "sk-secret" not in repr(CRED) and "sk-secret" not in str(CRED)


@pytest.mark.parametrize("provider", ["openai", "groq", "anthropic"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_key_given_twice_reaches_the_upstream_once_as_it_was_priced(provider, stream):
    """The client's bytes repeat `model` and `max_tokens` (once through a `\\u` escape). We
    parse last-wins and price that; a first-wins upstream must not see the other values, so it
    gets the parsed object re-encoded, each key once."""
    endpoint = "messages" if provider == "anthropic" else "chat"
    raw = (
        b'{"model":"gpt-4o","max_tokens":100000,"messages":[{"role":"user","content":"hi"}],'
        b'"\\u006dodel":"gpt-4o-mini","max_tokens":5,"stream":'
        + (b"true" if stream else b"false")
        + b"}"
    )
    body = orjson.loads(raw)
    assert (body["model"], body["max_tokens"]) == ("gpt-4o-mini", 5)
    up = adapter_for(provider).build(endpoint, body, "gpt-4o-mini", CRED, stream)
    pairs = json.loads(up.body, object_pairs_hook=lambda kv: kv)
    keys = [k for k, _v in pairs]
    assert keys.count("model") == 1 and keys.count("max_tokens") == 1
    first = dict(reversed(pairs))  # what a first-wins parser keeps
    assert (first["model"], first["max_tokens"]) == ("gpt-4o-mini", 5)
    if stream and provider != "anthropic":
        assert first["stream_options"] == [("include_usage", True)]


def test_stream_usage_option_is_added_to_the_parsed_body():
    adapter = adapter_for("openai")
    for raw in (
        b'{"model":"gpt-4o","stream_options":{"include_usage":false},"messages":[]}',
        b'{"model":"gpt-4o","stream_options":null,"messages":[]}',
        b' {"model":"gpt-4o","messages":[]}',
    ):
        body = orjson.loads(raw)
        sent = orjson.loads(adapter.build("chat", body, "gpt-4o", CRED, True).body)
        assert sent["stream_options"] == {"include_usage": True}
        assert sent["messages"] == []
    renamed = adapter.build("chat", {"model": "alias"}, "gpt-4o", CRED, True)
    assert orjson.loads(renamed.body) == {
        "model": "gpt-4o",
        "stream_options": {"include_usage": True},
    }
