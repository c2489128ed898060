"""The official `anthropic` SDK, and OpenAI-format calls translated to Anthropic and Gemini."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from billing.pricing import cost_usd
from core.money import usd_exact

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def ant(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base.removesuffix("/v1"), api_key=gw.key, max_retries=0)


def test_messages_native_non_stream_and_stream(gw):
    raw = ant(gw).messages.with_raw_response.create(
        model="claude-3-5-haiku-latest",
        max_tokens=100,
        system="be brief",
        messages=[{"role": "user", "content": "hello claude [[sim:cached=3]]"}],
    )
    message = raw.parse()
    assert message.content[0].text and message.stop_reason == "end_turn"
    [record] = gw.ledger(request_id=raw.headers["alephant-request-id"])
    # Our input_tokens include Anthropic's cache reads; cost == catalog price.
    assert record.input_tokens == message.usage.input_tokens + 3 and record.cached_tokens == 3
    expected = cost_usd(
        "anthropic",
        "claude-3-5-haiku-latest",
        input_tokens=record.input_tokens,
        output_tokens=message.usage.output_tokens,
        cached_tokens=3,
    )
    assert record.cost_usd == expected and raw.headers["alephant-cost-usd"] == usd_exact(expected)
    assert gw.stack.sim_stats()["last_auth"] == "sk-ant-sim-0002"

    with ant(gw).messages.stream(
        model="claude-3-5-haiku-latest",
        max_tokens=100,
        messages=[{"role": "user", "content": "hello claude"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text and final.usage.output_tokens == 12
    streamed = [r for r in gw.ledger() if r.stream]
    assert len(streamed) == 1 and streamed[0].output_tokens == 12 and not streamed[0].estimated


def test_messages_errors_are_anthropic_shaped(gw):
    with pytest.raises(anthropic.AuthenticationError) as bad_key:
        anthropic.Anthropic(
            base_url=gw.base.removesuffix("/v1"), api_key="nope", max_retries=0
        ).messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
        )
    assert bad_key.value.body["type"] == "error"
    assert bad_key.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        ant(gw).messages.create(
            model="claude-nope-9", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        ant(gw).messages.create(model="claude-3-5-haiku-latest", max_tokens=10, messages=[])
    assert gw.stack.sim_stats()["total"] == 0


@pytest.mark.parametrize(
    "model,provider", [("claude-3-5-haiku-latest", "anthropic"), ("gemini-2.0-flash", "gemini")]
)
def test_openai_sdk_translated_round_trip(gw, model, provider):
    c = openai.OpenAI(base_url=gw.base, api_key=gw.key, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model=model,
        messages=[
            {"role": "system", "content": "be kind"},
            {"role": "user", "content": "hi there"},
        ],
        max_tokens=50,
    )
    completion = raw.parse()
    assert completion.choices[0].finish_reason == "stop" and completion.choices[0].message.content
    sent = gw.stack.sim_stats()["last_body"]
    if provider == "anthropic":
        assert sent["system"] == "be kind" and sent["max_tokens"] == 50
    else:
        assert sent["systemInstruction"] == {"parts": [{"text": "be kind"}]}
        assert sent["generationConfig"]["maxOutputTokens"] == 50
    [record] = gw.ledger(request_id=raw.headers["alephant-request-id"])
    assert record.provider == provider
    assert record.cost_usd == cost_usd(
        provider,
        model,
        input_tokens=completion.usage.prompt_tokens,
        output_tokens=completion.usage.completion_tokens,
    )

    # Length stop reason maps to "length".
    short = c.chat.completions.create(
        model=model, max_tokens=3, messages=[{"role": "user", "content": "long story"}]
    )
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3

    # Tools both ways, non-stream and stream.
    first = c.chat.completions.create(
        model=model, tools=TOOLS, messages=[{"role": "user", "content": "weather Paris"}]
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "weather Paris"}
    second = c.chat.completions.create(
        model=model,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather Paris"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert second.choices[0].message.content and second.choices[0].finish_reason == "stop"
    chunks = list(
        c.chat.completions.create(
            model=model,
            tools=TOOLS,
            stream=True,
            messages=[{"role": "user", "content": "weather Paris"}],
        )
    )
    args = "".join(
        ch.choices[0].delta.tool_calls[0].function.arguments or ""
        for ch in chunks
        if ch.choices and ch.choices[0].delta.tool_calls
    )
    assert json.loads(args) == {"city": "weather Paris"}
    assert [
        ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason
    ] == ["tool_calls"]

    # Streaming text with usage requested: deltas, finish reason, usage chunk.
    chunks = list(
        c.chat.completions.create(
            model=model,
            stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "user", "content": "stream it"}],
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert len(text.split()) == 12 and chunks[-1].usage.completion_tokens == 12
    streamed = [r for r in gw.ledger(provider=provider) if r.stream and r.endpoint == "chat"]
    assert streamed[-1].output_tokens == 12 and not streamed[-1].estimated


def test_anthropic_sdk_on_an_openai_model_is_translated(gw):
    client = ant(gw)
    raw = client.messages.with_raw_response.create(
        model="gpt-4o-mini",
        max_tokens=50,
        system="be brief",
        messages=[{"role": "user", "content": "hello gpt"}],
    )
    message = raw.parse()
    assert message.content[0].text and message.stop_reason == "end_turn"
    sent = gw.stack.sim_stats()["last_body"]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert gw.stack.sim_stats()["last_auth"] == "Bearer sk-sim-openai-0001"
    [record] = gw.ledger(request_id=raw.headers["alephant-request-id"])
    assert (record.provider, record.endpoint) == ("openai", "messages")
    assert record.cost_usd == cost_usd(
        "openai",
        "gpt-4o-mini",
        input_tokens=message.usage.input_tokens,
        output_tokens=message.usage.output_tokens,
    )

    with client.messages.stream(
        model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "stream gpt"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 12 and final.usage.output_tokens == 12

    tools = [
        {
            "name": "get_weather",
            "description": "weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    first = client.messages.create(
        model="gpt-4o-mini",
        max_tokens=50,
        tools=tools,
        messages=[{"role": "user", "content": "weather Oslo"}],
    )
    use = first.content[-1]
    assert first.stop_reason == "tool_use" and use.name == "get_weather"
    assert use.input == {"city": "weather Oslo"}
    second = client.messages.create(
        model="gpt-4o-mini",
        max_tokens=50,
        tools=tools,
        messages=[
            {"role": "user", "content": "weather Oslo"},
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "cold"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn" and second.content[0].text
    with client.messages.stream(
        model="gpt-4o-mini",
        max_tokens=50,
        tools=tools,
        messages=[{"role": "user", "content": "weather Oslo"}],
    ) as stream:
        streamed = stream.get_final_message()
    assert streamed.content[-1].input == {"city": "weather Oslo"}
