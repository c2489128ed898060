"""A stream the upstream cuts ends, for the client, with an error the official SDKs raise, and
the ledger row says so (issue 11: "a cut stream ends cleanly for the client" was the bug).

A real gateway process and a small upstream of our own that starts an answer and then either
drops the connection mid-stream (`drop`) or ends the body cleanly without the terminal event
(`eof`: no `[DONE]`, no `message_stop`). The official `openai` and `anthropic` SDKs call the
gateway; each must raise, and the ledger row is 502 `upstream_truncated`, estimated, with the
output produced so far.
"""

from __future__ import annotations

import asyncio

import anthropic
import httpx
import openai
import orjson
import pytest
from aiohttp import web

from tests.gateway.upstreams import ThreadedUpstream, provider_keys_point_at, running

WORDS = ["The", " answer", " is", " forty", " two", " and", " then"]


class CuttingUpstream(ThreadedUpstream):
    """OpenAI chat and Anthropic messages streams that never finish (mode in the prompt)."""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        events = [
            {
                "id": "chatcmpl-cut",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}],
            }
            for word in WORDS
        ]
        frames = [b"data: " + orjson.dumps(e) + b"\n\n" for e in events]
        return await self._send(request, frames, body["messages"][-1]["content"])

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        start = {
            "type": "message_start",
            "message": {
                "id": "msg_cut",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        }
        block = {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}
        block["content_block"]["text"] = ""
        events = [start, block] + [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in WORDS
        ]
        frames = [
            b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n"
            for e in events
        ]
        return await self._send(request, frames, body["messages"][-1]["content"])

    async def _send(self, request: web.Request, frames: list[bytes], mode: str):
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for frame in frames:
            await resp.write(frame)
            await asyncio.sleep(0.005)
        if mode == "drop" and request.transport is not None:
            request.transport.close()  # mid-stream: the chunked body never ends
            return resp
        await resp.write_eof()  # "eof": a clean end, but no terminal event
        return resp

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/messages", self.messages)


@pytest.fixture(scope="module")
def upstream():
    with running(CuttingUpstream()) as server:
        yield server


@pytest.fixture
def cutting(gw, upstream):
    provider_keys_point_at(gw, upstream, families=("openai", "anthropic"), name="cut", secret="cut")
    return gw


def _assert_marked(gw, request_id: str) -> None:
    [record] = gw.ledger(request_id=request_id)
    assert (record.status_code, record.error_type) == (502, "upstream_truncated")
    assert record.stream and record.estimated
    assert record.output_tokens > 0 and record.cost_usd > 0  # billed what was produced


@pytest.mark.parametrize("mode", ["drop", "eof"])
def test_openai_sdk_raises_on_a_cut_chat_stream(cutting, mode: str):
    client = openai.OpenAI(api_key=cutting.key, base_url=cutting.base, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="cut-openai/gpt-4o-mini",
        messages=[{"role": "user", "content": mode}],
        stream=True,
    )
    request_id = raw.headers["alephant-request-id"]
    seen: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in raw.parse():
            seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "".join(WORDS)  # everything produced reached the client first
    assert "upstream_truncated" in raised.value.message
    assert raised.value.body["code"] == "upstream_truncated"
    _assert_marked(cutting, request_id)


@pytest.mark.parametrize("mode", ["drop", "eof"])
def test_anthropic_sdk_raises_on_a_cut_messages_stream(cutting, mode: str):
    base = cutting.base.removesuffix("/v1")
    client = anthropic.Anthropic(api_key=cutting.key, base_url=base, max_retries=0)
    raw = client.messages.with_raw_response.create(
        model="cut-anthropic/claude-3-5-haiku-latest",
        max_tokens=100,
        messages=[{"role": "user", "content": mode}],
        stream=True,
    )
    request_id = raw.headers["alephant-request-id"]
    text: list[str] = []
    with pytest.raises(anthropic.APIError) as raised:
        for event in raw.parse():
            if event.type == "content_block_delta":
                text.append(event.delta.text)
    assert "".join(text) == "".join(WORDS)
    assert "upstream_truncated" in str(raised.value)
    _assert_marked(cutting, request_id)


def test_a_finished_stream_has_no_error_event(gw):
    """The simulator's streams end properly: no error event, only the cost trailer after."""
    with httpx.stream(
        "POST",
        gw.base + "/chat/completions",
        json={
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={"authorization": f"Bearer {gw.key}"},
        timeout=30,
    ) as resp:
        text = resp.read().decode()
    assert '"error"' not in text and "data: [DONE]" in text
