"""What each provider and endpoint sends, with the usage Alephant must read from it.

Shapes follow each provider's documented wire format: OpenAI chat/completions streams end
with a usage-only chunk (empty `choices`) when `stream_options.include_usage` is set, and every
chunk then carries `"usage": null`; Azure starts with a `prompt_filter_results` chunk with no
choices; Groq reports `x_groq.usage` on its last chunk; Mistral puts usage on the last chunk
with choices (Alephant sends it no `stream_options`); DeepSeek adds `prompt_cache_hit_tokens`
and `reasoning_content` deltas; OpenRouter sends `: OPENROUTER PROCESSING` comments and a `cost`;
xAI leaves reasoning tokens out of `completion_tokens` (but not out of `total_tokens`); the
Responses API ends with `response.completed`; Anthropic reports input and cache tokens in
`message_start` and cumulative output in `message_delta`; Gemini repeats cumulative
`usageMetadata`, with `thoughtsTokenCount` billed as output.

`Expected` is in genai-prices' convention: `input` includes cache reads and writes, `output`
includes reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.gateway.wire.render import DONE

Events = list[tuple[str | None, Any, bool]]  # (SSE event name, payload, usage-only chunk)


@dataclass(frozen=True)
class Expected:
    input: int
    output: int
    cached: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class StreamCase:
    name: str
    provider: str  # Alephant's provider family
    endpoint: str  # the client's route
    model: str
    expected: Expected
    events: Events
    text: str = ""  # the answer's text, for translated streams
    passthrough: bool = True  # the client gets the upstream's own bytes


@dataclass(frozen=True)
class BodyCase:
    name: str
    provider: str
    endpoint: str
    model: str
    expected: Expected
    body: dict[str, Any]
    passthrough: bool = True


# Prices for families the catalog does not know (self-hosted): the workspace's override.
OVERRIDES = [
    {
        "provider": "vllm",
        "model": "llama-3.1-8b",
        "input_per_mtok": "0.2",
        "output_per_mtok": "0.6",
    },
    {"provider": "ollama", "model": "qwen2.5:7b", "input_per_mtok": "0", "output_per_mtok": "0.1"},
]


def _chunk(choices: list, *, usage: Any = None, obj: str = "chat.completion.chunk", **extra):
    out = {"id": "chatcmpl-1", "object": obj, "created": 1, "model": "m", "choices": choices}
    out.update(extra)
    if usage is not None:
        out["usage"] = usage
    return out


def _delta(content: str | None = None, index: int = 0, finish: str | None = None, **delta):
    if content is not None:
        delta["content"] = content
    return {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}


def _usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0, **extra) -> dict:
    out = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }
    out.update(extra)
    return out


def _chat_stream(deltas: list[dict], usage: dict, *, null_usage: bool = True) -> list:
    """OpenAI's shape with include_usage: `usage: null` on every chunk, then a usage chunk."""
    nothing = {"usage": None} if null_usage else {}
    events: Events = [(None, {**_chunk([d]), **nothing}, False) for d in deltas]
    events.append((None, _chunk([], usage=usage), True))
    events.append((None, DONE, False))
    return events


TOOL_CALL = {
    "index": 0,
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": ""},
}

STREAMS: list[StreamCase] = [
    StreamCase(
        "openai-chat",
        "openai",
        "chat",
        "gpt-4o",
        Expected(input=1200, output=35, cached=1024),
        _chat_stream(
            [
                _delta("", role="assistant"),
                _delta('Hello \u00e9\u4e16 "q"'),
                _delta(None, finish="stop"),
            ],
            _usage(1200, 35, cached=1024),
        ),
    ),
    StreamCase(
        "openai-chat-n2-tools-refusal",
        "openai",
        "chat",
        "gpt-4o",
        Expected(input=50, output=80),
        _chat_stream(
            [
                _delta(None, 0, role="assistant", tool_calls=[TOOL_CALL]),
                _delta(None, 1, role="assistant", refusal=""),
                _delta(None, 0, tool_calls=[{"index": 0, "function": {"arguments": '{"city":'}}]),
                _delta(None, 1, refusal="I can't help with that."),
                _delta(None, 0, tool_calls=[{"index": 0, "function": {"arguments": '"Paris"}'}}]),
                _delta(None, 0, finish="tool_calls"),
                _delta(None, 1, finish="stop"),
            ],
            _usage(50, 80),
        ),
    ),
    StreamCase(
        "openai-chat-reasoning",
        "openai",
        "chat",
        "o3-mini",
        Expected(input=30, output=900),
        _chat_stream(
            [_delta("", role="assistant"), _delta("42"), _delta(None, finish="stop")],
            _usage(30, 900, reasoning=870),
        ),
    ),
    StreamCase(
        "openai-completions",
        "openai",
        "completions",
        "gpt-3.5-turbo-instruct",
        Expected(input=5, output=7),
        [
            (
                None,
                {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "choices": [{"text": "Once", "index": 0, "finish_reason": None}],
                    "usage": None,
                },
                False,
            ),
            (
                None,
                {
                    "id": "cmpl-1",
                    "object": "text_completion",
                    "choices": [{"text": " upon", "index": 0, "finish_reason": "length"}],
                    "usage": None,
                },
                False,
            ),
            (
                None,
                {"id": "cmpl-1", "object": "text_completion", "choices": [], "usage": _usage(5, 7)},
                True,
            ),
            (None, DONE, False),
        ],
    ),
    StreamCase(
        "openai-responses",
        "openai",
        "responses",
        "o3-mini",
        Expected(input=400, output=650, cached=256),
        [
            (
                "response.created",
                {
                    "type": "response.created",
                    "sequence_number": 0,
                    "response": {"id": "resp_1", "status": "in_progress", "usage": None},
                },
                False,
            ),
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 1,
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": "Hi",
                },
                False,
            ),
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 2,
                    "item_id": "msg_1",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": " there",
                },
                False,
            ),
            (
                "response.completed",
                {
                    "type": "response.completed",
                    "sequence_number": 3,
                    "response": {
                        "id": "resp_1",
                        "status": "completed",
                        "usage": {
                            "input_tokens": 400,
                            "input_tokens_details": {"cached_tokens": 256},
                            "output_tokens": 650,
                            "output_tokens_details": {"reasoning_tokens": 600},
                            "total_tokens": 1050,
                        },
                    },
                },
                False,
            ),
        ],
    ),
    StreamCase(
        "azure-chat",
        "azure-openai",
        "chat",
        "gpt-4o",
        Expected(input=19, output=3),
        [
            (
                None,
                {
                    "choices": [],
                    "created": 0,
                    "id": "",
                    "model": "",
                    "object": "",
                    "prompt_filter_results": [
                        {
                            "prompt_index": 0,
                            "content_filter_results": {
                                "hate": {"filtered": False, "severity": "safe"}
                            },
                        }
                    ],
                },
                False,
            ),
            *_chat_stream(
                [_delta("", role="assistant"), _delta("Yes."), _delta(None, finish="stop")],
                _usage(19, 3),
            ),
        ],
    ),
    StreamCase(
        "groq-x_groq-usage",
        "groq",
        "chat",
        "llama-3.3-70b-versatile",
        Expected(input=40, output=12),
        [
            (None, {**_chunk([_delta("", role="assistant")]), "x_groq": {"id": "req_1"}}, False),
            (None, _chunk([_delta("Sure")]), False),
            (
                None,
                {
                    **_chunk([_delta(None, finish="stop")]),
                    "x_groq": {
                        "id": "req_1",
                        "usage": {
                            "queue_time": 0.01,
                            "prompt_tokens": 40,
                            "prompt_time": 0.002,
                            "completion_tokens": 12,
                            "completion_time": 0.03,
                            "total_tokens": 52,
                            "total_time": 0.032,
                        },
                    },
                },
                False,
            ),
            (None, DONE, False),
        ],
    ),
    StreamCase(
        "mistral-usage-on-last-choice",
        "mistral",
        "chat",
        "mistral-small-latest",
        Expected(input=11, output=9),
        [
            (None, _chunk([_delta("", role="assistant")]), False),
            (None, _chunk([_delta("Bonjour")]), False),
            (
                None,
                _chunk(
                    [_delta("", finish="stop")],
                    usage={"prompt_tokens": 11, "total_tokens": 20, "completion_tokens": 9},
                ),
                False,
            ),
            (None, DONE, False),
        ],
    ),
    StreamCase(
        "deepseek-reasoner-cache",
        "deepseek",
        "chat",
        "deepseek-reasoner",
        Expected(input=300, output=120, cached=256),
        _chat_stream(
            [
                _delta(None, role="assistant", reasoning_content=""),
                _delta(None, reasoning_content="Let me think."),
                _delta("Answer."),
                _delta(None, finish="stop"),
            ],
            {
                "prompt_tokens": 300,
                "completion_tokens": 120,
                "total_tokens": 420,
                "prompt_tokens_details": {"cached_tokens": 256},
                "completion_tokens_details": {"reasoning_tokens": 100},
                "prompt_cache_hit_tokens": 256,
                "prompt_cache_miss_tokens": 44,
            },
            null_usage=False,
        ),
    ),
    StreamCase(
        "deepseek-chat-cache-hit-only",
        "deepseek",
        "chat",
        "deepseek-chat",
        Expected(input=300, output=20, cached=200),
        _chat_stream(
            [_delta("", role="assistant"), _delta("ok"), _delta(None, finish="stop")],
            {
                "prompt_tokens": 300,
                "completion_tokens": 20,
                "total_tokens": 320,
                "prompt_cache_hit_tokens": 200,
                "prompt_cache_miss_tokens": 100,
            },
            null_usage=False,
        ),
    ),
    StreamCase(
        "openrouter-comments-cost",
        "openrouter",
        "chat",
        "openai/gpt-4o",
        Expected(input=64, output=16, cached=32),
        _chat_stream(
            [_delta("", role="assistant"), _delta("Hi"), _delta(None, finish="stop")],
            _usage(64, 16, cached=32, cost=0.00024, is_byok=False),
            null_usage=False,
        ),
    ),
    StreamCase(
        "xai-reasoning-outside-completion",
        "xai",
        "chat",
        "grok-3-mini",
        Expected(input=20, output=171),
        _chat_stream(
            [_delta("", role="assistant"), _delta("4"), _delta(None, finish="stop")],
            {
                "prompt_tokens": 20,
                "completion_tokens": 10,
                "total_tokens": 191,
                "completion_tokens_details": {"reasoning_tokens": 161},
            },
        ),
    ),
    StreamCase(
        "vllm-final-usage",
        "vllm",
        "chat",
        "llama-3.1-8b",
        Expected(input=17, output=5),
        _chat_stream(
            [_delta("", role="assistant"), _delta("hey"), _delta(None, finish="stop")],
            {
                "prompt_tokens": 17,
                "total_tokens": 22,
                "completion_tokens": 5,
                "prompt_tokens_details": None,
            },
        ),
    ),
    StreamCase(
        "ollama-final-usage",
        "ollama",
        "chat",
        "qwen2.5:7b",
        Expected(input=26, output=8),
        _chat_stream(
            [_delta("", role="assistant"), _delta("hello"), _delta(None, finish="stop")],
            {"prompt_tokens": 26, "completion_tokens": 8, "total_tokens": 34},
            null_usage=False,
        ),
    ),
    StreamCase(
        "anthropic-messages-cache-tools-thinking",
        "anthropic",
        "messages",
        "claude-sonnet-4-20250514",
        Expected(input=12 + 2000 + 300, output=210, cached=2000, cache_write=300),
        [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "model": "claude-sonnet-4-20250514",
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {
                            "input_tokens": 12,
                            "cache_creation_input_tokens": 300,
                            "cache_read_input_tokens": 2000,
                            "output_tokens": 1,
                        },
                    },
                },
                False,
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": ""},
                },
                False,
            ),
            ("ping", {"type": "ping"}, False),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": "Weather tool."},
                },
                False,
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": "EqQB"},
                },
                False,
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}, False),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {},
                    },
                },
                False,
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
                },
                False,
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 1}, False),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 210},
                },
                False,
            ),
            ("message_stop", {"type": "message_stop"}, False),
        ],
    ),
    StreamCase(
        "anthropic-messages-refusal",
        "anthropic",
        "messages",
        "claude-3-5-haiku-latest",
        Expected(input=9, output=4),
        [
            (
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_2",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "usage": {"input_tokens": 9, "output_tokens": 1},
                    },
                },
                False,
            ),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                False,
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "No."},
                },
                False,
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}, False),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "refusal"},
                    "usage": {"input_tokens": 9, "cache_read_input_tokens": 0, "output_tokens": 4},
                },
                False,
            ),
            ("message_stop", {"type": "message_stop"}, False),
        ],
    ),
]

# Translated streams: the client gets another format; usage and text must survive.
ANTHROPIC_TEXT: Events = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_3",
                "usage": {"input_tokens": 30, "cache_read_input_tokens": 100, "output_tokens": 1},
            },
        },
        False,
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        False,
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
        False,
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": " world"},
        },
        False,
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}, False),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 6},
        },
        False,
    ),
    ("message_stop", {"type": "message_stop"}, False),
]
GEMINI_TEXT: Events = [
    (
        None,
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 40, "totalTokenCount": 40},
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
        False,
    ),
    (
        None,
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "lo"}]},
                    "index": 0,
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 40,
                "candidatesTokenCount": 5,
                "thoughtsTokenCount": 90,
                "cachedContentTokenCount": 32,
                "totalTokenCount": 135,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40}],
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "r1",
        },
        False,
    ),
]
TRANSLATED: list[StreamCase] = [
    StreamCase(
        "anthropic-to-chat",
        "anthropic",
        "chat",
        "claude-3-5-haiku-latest",
        Expected(input=130, output=6, cached=100),
        ANTHROPIC_TEXT,
        "Hello world",
        False,
    ),
    StreamCase(
        "gemini-to-chat",
        "gemini",
        "chat",
        "gemini-2.5-flash",
        Expected(input=40, output=95, cached=32),
        GEMINI_TEXT,
        "Hello",
        False,
    ),
    StreamCase(
        "chat-to-anthropic-messages",
        "openai",
        "messages",
        "gpt-4o",
        Expected(input=1200, output=35, cached=1024),
        STREAMS[0].events,
        'Hello \u00e9\u4e16 "q"',
        False,
    ),
]


def _completion(message: dict, usage: dict, n: int = 1, **extra) -> dict:
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": "stop"}
        for i in range(n)
    ]
    return {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": choices,
        "usage": usage,
        **extra,
    }


BODIES: list[BodyCase] = [
    BodyCase(
        "openai-chat-n3-refusal",
        "openai",
        "chat",
        "gpt-4o",
        Expected(input=100, output=60, cached=64),
        _completion(
            {"role": "assistant", "content": None, "refusal": "I can't."},
            _usage(100, 60, cached=64),
            n=3,
        ),
    ),
    BodyCase(
        "openai-chat-tool-call",
        "openai",
        "chat",
        "gpt-4o-mini",
        Expected(input=80, output=20),
        _completion(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{**TOOL_CALL, "function": {"name": "f", "arguments": '{"a": 1}'}}],
            },
            _usage(80, 20),
        ),
    ),
    BodyCase(
        "openai-reasoning",
        "openai",
        "chat",
        "o3-mini",
        Expected(input=10, output=500),
        _completion({"role": "assistant", "content": "ok"}, _usage(10, 500, reasoning=480)),
    ),
    BodyCase(
        "openai-completions",
        "openai",
        "completions",
        "gpt-3.5-turbo-instruct",
        Expected(input=4, output=16),
        {
            "id": "cmpl-2",
            "object": "text_completion",
            "choices": [{"text": "x", "index": 0, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 16, "total_tokens": 20},
        },
    ),
    BodyCase(
        "openai-embeddings",
        "openai",
        "embeddings",
        "text-embedding-3-small",
        Expected(input=24, output=0),
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": 0, "embedding": [0.1, -0.2]},
                {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 24, "total_tokens": 24},
        },
    ),
    BodyCase(
        "openai-responses",
        "openai",
        "responses",
        "gpt-4o",
        Expected(input=70, output=12, cached=0),
        {
            "id": "resp_2",
            "object": "response",
            "status": "completed",
            "output": [{"type": "message", "content": [{"type": "output_text", "text": "hi"}]}],
            "usage": {
                "input_tokens": 70,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 12,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 82,
            },
        },
    ),
    BodyCase(
        "deepseek-cache",
        "deepseek",
        "chat",
        "deepseek-chat",
        Expected(input=500, output=50, cached=448),
        _completion(
            {"role": "assistant", "content": "ok"},
            {
                "prompt_tokens": 500,
                "completion_tokens": 50,
                "total_tokens": 550,
                "prompt_cache_hit_tokens": 448,
                "prompt_cache_miss_tokens": 52,
            },
        ),
    ),
    BodyCase(
        "anthropic-message-cache",
        "anthropic",
        "messages",
        "claude-3-5-haiku-latest",
        Expected(input=3 + 1000 + 500, output=40, cached=1000, cache_write=500),
        {
            "id": "msg_9",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "text", "text": "hi"}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 3,
                "cache_creation_input_tokens": 500,
                "cache_read_input_tokens": 1000,
                "output_tokens": 40,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 500,
                    "ephemeral_1h_input_tokens": 0,
                },
            },
        },
    ),
    BodyCase(
        "gemini-thoughts",
        "gemini",
        "chat",
        "gemini-2.5-flash",
        Expected(input=12, output=7 + 200),
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"text": "thinking...", "thought": True}, {"text": "Done"}],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 12,
                "candidatesTokenCount": 7,
                "thoughtsTokenCount": 200,
                "totalTokenCount": 219,
            },
            "responseId": "g1",
        },
        passthrough=False,
    ),
    BodyCase(
        "anthropic-to-chat",
        "anthropic",
        "chat",
        "claude-3-5-haiku-latest",
        Expected(input=10, output=2),
        {
            "id": "msg_8",
            "type": "message",
            "content": [{"type": "text", "text": "yo"}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 10, "output_tokens": 2},
        },
        passthrough=False,
    ),
]
