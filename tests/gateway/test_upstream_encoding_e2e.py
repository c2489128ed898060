"""An upstream that compresses although the gateway asked for identity (issue 11).

The same hostile wire corpus as `test_wire_e2e.py`, but every answer is gzip- or
deflate-encoded with a `content-encoding` header, streams written in 7-byte pieces of the
compressed bytes. Through a real gateway: the ledger cost equals `genai_prices.calc_price`
exactly, and the client receives plain bytes with no `content-encoding` (a consistent body).
A corrupt compressed stream is billed as malformed, never a 500.
"""

from __future__ import annotations

import gzip
import zlib

import pytest
from aiohttp import web

from tests.gateway.test_wire_e2e import (
    BODY_CASES,
    HOSTILE,
    STREAM_CASES,
    TRAILER,
    Upstream,
    _assert_ledger,
    _call,
    _case_name,
)
from tests.gateway.upstreams import provider_keys_point_at, running
from tests.gateway.wire.render import render_body, render_stream

pytestmark = pytest.mark.slow


def _compress(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "deflate":
        return zlib.compress(data)
    # "corrupt": a gzip header, then a deflate block of the reserved type 11 (zlib refuses it).
    packed = gzip.compress(data)
    return packed[:10] + b"\xff" * 8 + packed[18:]


class CompressingUpstream(Upstream):
    def __init__(self) -> None:
        super().__init__()
        self.encoding = "gzip"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append((dict(request.headers), body))
        name = _case_name(body)
        wire = "gzip" if self.encoding == "corrupt" else self.encoding
        if not body.get("stream"):
            payload = render_body(BODY_CASES[name].body, "indented")
            return web.Response(
                body=_compress(payload, self.encoding),
                headers={"content-type": "application/json", "content-encoding": wire},
            )
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        upstream, _ = render_stream(STREAM_CASES[name].events, HOSTILE, drop_added=not asked)
        packed = _compress(upstream, self.encoding)
        resp = web.StreamResponse(
            headers={"content-type": "text/event-stream", "content-encoding": wire}
        )
        await resp.prepare(request)
        for i in range(0, len(packed), 7):
            await resp.write(packed[i : i + 7])
        await resp.write_eof()
        return resp


@pytest.fixture(scope="module")
def zipper():
    with running(CompressingUpstream()) as server:
        yield server


@pytest.fixture
def compressed(gw, zipper):
    provider_keys_point_at(gw, zipper, families=("openai", "anthropic"), name="h", secret="zip")
    zipper.requests.clear()
    zipper.encoding = "gzip"
    return gw


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("name", ["openai-chat", "anthropic-messages-cache-tools-thinking"])
def test_compressed_streams_are_decoded_and_billed_exactly(compressed, zipper, name, encoding):
    zipper.encoding = encoding
    case = STREAM_CASES[name]
    response = _call(compressed, case, stream=True)
    assert response.status_code == 200, response.text
    assert "content-encoding" not in response.headers
    _, client = render_stream(case.events, HOSTILE, drop_added=True)
    assert response.content.startswith(client)
    assert TRAILER.fullmatch(response.content[len(client) :])
    _assert_ledger(compressed, case, response, stream=True)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("name", ["openai-chat-n3-refusal", "anthropic-message-cache"])
def test_compressed_answers_are_decoded_and_billed_exactly(compressed, zipper, name, encoding):
    zipper.encoding = encoding
    case = BODY_CASES[name]
    response = _call(compressed, case, stream=False)
    assert response.status_code == 200, response.text
    assert "content-encoding" not in response.headers
    assert response.content == render_body(case.body, "indented")
    _assert_ledger(compressed, case, response, stream=False)


def test_a_corrupt_compressed_stream_is_billed_as_malformed(compressed, zipper):
    zipper.encoding = "corrupt"
    case = STREAM_CASES["openai-chat"]
    response = _call(compressed, case, stream=True)
    assert response.status_code == 200  # the stream had started
    [record] = compressed.ledger(request_id=response.headers["alephant-request-id"])
    assert (record.status_code, record.error_type) == (502, "upstream_malformed")


def test_a_corrupt_compressed_answer_is_a_502_not_a_500(compressed, zipper):
    zipper.encoding = "corrupt"
    response = _call(compressed, BODY_CASES["openai-chat-n3-refusal"], stream=False)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"] == "upstream_malformed"
