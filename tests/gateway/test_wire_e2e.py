"""End to end against a hostile (but valid) upstream: a real gateway process, a real ledger.

The upstream is an aiohttp server written the way someone else's OpenAI-compatible server or
proxy may be: `json.dumps` spacing (`"usage": {`), `\\r\\n` line endings, `data:` without a
space, keep-alive comments, event names, and writes of 7 bytes that split everything. It is a
faithful server: it sends the usage-only chunk only when the request asked for it.
For each corpus case: the ledger row's cost equals `genai_prices.calc_price` to the Decimal,
the row is complete (200, not estimated), and the client receives exactly the upstream's bytes
minus the usage chunk Alephant asked for, then Alephant's cost trailer.
"""

from __future__ import annotations

import re

import httpx
import orjson
import pytest
from aiohttp import web

from tests.gateway.test_wire_corpus import independent_cost
from tests.gateway.upstreams import ThreadedUpstream, provider_keys_point_at, running
from tests.gateway.wire.corpus import BODIES, STREAMS, BodyCase, StreamCase
from tests.gateway.wire.render import Style, render_body, render_stream

HOSTILE = Style(spacing="spaced", eol="\r\n", prefix="data:", names=True, keepalive_every=2)
PRETTY = Style(spacing="indented", eol="\n", prefix="data: ", names=True, keepalive_every=0)
TRAILER = re.compile(rb": alephant-cost-usd=[0-9.]+(e-?\d+)?\n\n")
STREAM_CASES = {c.name: c for c in STREAMS}
BODY_CASES = {c.name: c for c in BODIES}
E2E_STREAMS = [
    "openai-chat",
    "openai-chat-n2-tools-refusal",
    "openai-chat-reasoning",
    "openai-completions",
    "openai-responses",
    "deepseek-reasoner-cache",
    "anthropic-messages-cache-tools-thinking",
]
E2E_BODIES = ["openai-chat-n3-refusal", "openai-embeddings", "anthropic-message-cache"]
PATHS = {"chat": "/chat/completions", "completions": "/completions", "responses": "/responses"}
PATHS |= {"embeddings": "/embeddings", "messages": "/messages"}


class Upstream(ThreadedUpstream):
    """The hostile server, on its own loop in a thread; the case is named in the request."""

    def __init__(self) -> None:
        super().__init__()
        self.style = HOSTILE
        self.requests: list[tuple[dict, dict]] = []  # (headers, body) as received

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        name = _case_name(body)
        if not body.get("stream"):
            payload = render_body(BODY_CASES[name].body, "indented")
            return web.Response(body=payload, content_type="application/json")
        case = STREAM_CASES[name]
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        upstream, _ = render_stream(case.events, self.style, drop_added=not asked)
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(upstream), 7):
            await resp.write(upstream[i : i + 7])
        await resp.write_eof()
        return resp


def _case_name(body: dict) -> str:
    if "input" in body and "messages" not in body:
        value = body["input"]
        return value if isinstance(value, str) else value[0]
    if "prompt" in body:
        return body["prompt"]
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[0]["text"]


@pytest.fixture(scope="module")
def upstream():
    with running(Upstream()) as server:
        yield server


@pytest.fixture
def hostile(gw, upstream):
    families = ("openai", "deepseek", "anthropic")
    provider_keys_point_at(gw, upstream, families=families, name="h", secret="hostile")
    upstream.requests.clear()
    return gw


def _request(case: StreamCase | BodyCase, stream: bool, wants_usage: bool) -> dict:
    body: dict = {"model": f"h-{case.provider}/{case.model}"}
    if case.endpoint in ("embeddings", "responses"):
        body["input"] = case.name
    elif case.endpoint == "completions":
        body["prompt"] = case.name
    else:
        body["messages"] = [{"role": "user", "content": case.name}]
    if case.endpoint == "messages":
        body["max_tokens"] = 1000
    if stream:
        body["stream"] = True
        if wants_usage and case.endpoint in ("chat", "completions"):
            body["stream_options"] = {"include_usage": True}
    return body


def _call(gw, case, *, stream: bool, wants_usage: bool = False) -> httpx.Response:
    return httpx.post(
        gw.base + PATHS[case.endpoint],
        json=_request(case, stream, wants_usage),
        headers={"authorization": "Bearer " + gw.key},
        timeout=30,
    )


def _assert_ledger(gw, case, response: httpx.Response, *, stream: bool) -> None:
    [record] = gw.ledger(request_id=response.headers["alephant-request-id"])
    assert (record.status_code, record.error_type, record.estimated) == (200, "", False)
    assert record.stream == stream
    e = case.expected
    assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (
        e.input,
        e.output,
        e.cached,
    )
    assert record.cost_usd == independent_cost(case)


@pytest.mark.parametrize("wants_usage", [False, True], ids=["usage-hidden", "usage-asked"])
@pytest.mark.parametrize("name", E2E_STREAMS)
def test_streams_from_a_hostile_upstream(hostile, upstream, name: str, wants_usage: bool):
    case = STREAM_CASES[name]
    response = _call(hostile, case, stream=True, wants_usage=wants_usage)
    assert response.status_code == 200, response.text
    headers, sent = upstream.requests[-1]
    assert headers.get("Accept-Encoding") == "identity"
    asked_upstream = bool((sent.get("stream_options") or {}).get("include_usage"))
    _, client = render_stream(
        case.events, HOSTILE, drop_added=not asked_upstream or not wants_usage
    )
    body = response.content
    assert body.startswith(client), name
    assert TRAILER.fullmatch(body[len(client) :]), body[len(client) :]
    _assert_ledger(hostile, case, response, stream=True)


@pytest.mark.parametrize("name", E2E_BODIES)
def test_pretty_printed_answers_from_a_hostile_upstream(hostile, upstream, name: str):
    case = BODY_CASES[name]
    response = _call(hostile, case, stream=False)
    assert response.status_code == 200, response.text
    assert response.content == render_body(case.body, "indented")  # the provider's own bytes
    _assert_ledger(hostile, case, response, stream=False)


def test_a_multiline_pretty_stream(hostile, upstream):
    upstream.style = PRETTY
    try:
        case = STREAM_CASES["openai-chat"]
        response = _call(hostile, case, stream=True)
        _, client = render_stream(case.events, PRETTY, drop_added=True)
        assert response.content.startswith(client)
        assert b'"usage"' not in response.content.replace(b'"usage": null', b"")
        _assert_ledger(hostile, case, response, stream=True)
    finally:
        upstream.style = HOSTILE


def test_sdk_reads_the_relayed_stream(hostile):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(api_key=hostile.key, base_url=hostile.base)
    chunks = list(
        client.chat.completions.create(
            model="h-openai/gpt-4o",
            messages=[{"role": "user", "content": "openai-chat"}],
            stream=True,
        )
    )
    # No chunk without choices reaches an SDK user who did not ask for usage.
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == 'Hello \u00e9\u4e16 "q"'
    assert orjson.dumps(chunks[-1].choices[0].finish_reason) == b'"stop"'
