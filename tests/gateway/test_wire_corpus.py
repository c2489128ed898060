"""The wire corpus (`tests/gateway/wire/`) through the provider adapters, without a network.

Every stream is re-spelled (JSON spacing and key order, line endings, `data:` with or without a
space, event names, keep-alive comments) and re-split at random byte boundaries. For every
case: the usage read equals the corpus' expected usage, the cost computed from it equals an
independent `genai_prices.calc_price` to the Decimal (and in billing's nano-dollars), and a
pass-through client receives exactly the upstream's bytes minus what Alephant added itself.
"""

from __future__ import annotations

import gzip
import zlib
from decimal import Decimal

import orjson
import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.pricing import CATALOG_PROVIDER, resolve_price, usd_to_nanos
from gateway.hotpath.providers import PROVIDERS, adapter_for
from gateway.hotpath.providers.base import Credential, ProviderError, Usage
from gateway.hotpath.providers.encoding import BodyDecoder, decode_body
from gateway.hotpath.providers.sse import SSEDecoder
from tests.gateway.wire.corpus import BODIES, OVERRIDES, STREAMS, TRANSLATED, BodyCase, StreamCase
from tests.gateway.wire.render import EOLS, SPACINGS, Style, render_body, render_stream

WIRE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
styles = st.builds(
    Style,
    spacing=st.sampled_from(SPACINGS),
    eol=st.sampled_from(EOLS),
    prefix=st.sampled_from(["data: ", "data:"]),
    names=st.booleans(),
    keepalive_every=st.integers(0, 3),
)


def independent_cost(case: StreamCase | BodyCase) -> Decimal:
    e = case.expected
    catalog = CATALOG_PROVIDER[case.provider]
    if catalog is None:  # self-hosted: the workspace's override price, by hand
        row = next(
            r for r in OVERRIDES if (r["provider"], r["model"]) == (case.provider, case.model)
        )
        return (
            e.input * Decimal(row["input_per_mtok"]) + e.output * Decimal(row["output_per_mtok"])
        ) / Decimal(1_000_000)
    usage = CatalogUsage(
        input_tokens=e.input,
        cache_read_tokens=e.cached,
        cache_write_tokens=e.cache_write,
        output_tokens=e.output,
    )
    return calc_price(usage, model_ref=case.model, provider_id=catalog).total_price


def assert_billed(case: StreamCase | BodyCase, usage: Usage) -> None:
    e = case.expected
    assert usage.reported
    got = (usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.cache_write_tokens)
    assert got == (e.input, e.output, e.cached, e.cache_write)
    cost = resolve_price(case.provider, case.model, OVERRIDES).cost(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cached_tokens=usage.cached_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )
    expected = independent_cost(case)
    assert cost == expected
    assert usd_to_nanos(cost) == usd_to_nanos(expected)


def pump(streamer, upstream: bytes, cuts: list[int], bytewise: bool) -> bytes:
    if bytewise:
        pieces = [upstream[i : i + 1] for i in range(len(upstream))]
    else:
        points = sorted(set(cuts))
        pieces = [upstream[a:b] for a, b in zip([0, *points], [*points, len(upstream)])]
    return b"".join(streamer.feed(piece) for piece in pieces) + streamer.finish()


def _draw_cuts(data, upstream: bytes) -> tuple[list[int], bool]:
    cuts = data.draw(st.lists(st.integers(0, len(upstream)), max_size=16), label="cuts")
    return cuts, data.draw(st.booleans(), label="bytewise")


@pytest.mark.parametrize("wants_usage", [False, True], ids=["usage-hidden", "usage-asked"])
@pytest.mark.parametrize("case", STREAMS, ids=lambda c: c.name)
@WIRE
@given(data=st.data())
def test_passthrough_streams(case: StreamCase, wants_usage: bool, data):
    style = data.draw(styles, label="style")
    upstream, client = render_stream(case.events, style, drop_added=not wants_usage)
    streamer = adapter_for(case.provider).streamer(case.endpoint, wants_usage, case.model)
    out = pump(streamer, upstream, *_draw_cuts(data, upstream))
    assert out == client
    assert streamer.done
    assert_billed(case, streamer.usage)


def _client_events(out: bytes) -> list[dict]:
    decoder = SSEDecoder()
    events = decoder.feed(out) + decoder.close()
    parsed = [orjson.loads(e.data) for e in events if e.data is not None and not e.is_done]
    return parsed


@pytest.mark.parametrize("wants_usage", [False, True], ids=["usage-hidden", "usage-asked"])
@pytest.mark.parametrize("case", TRANSLATED, ids=lambda c: c.name)
@WIRE
@given(data=st.data())
def test_translated_streams(case: StreamCase, wants_usage: bool, data):
    style = data.draw(styles, label="style")
    upstream, _ = render_stream(case.events, style, drop_added=False)
    streamer = adapter_for(case.provider).streamer(case.endpoint, wants_usage, case.model)
    out = pump(streamer, upstream, *_draw_cuts(data, upstream))
    assert streamer.done
    assert_billed(case, streamer.usage)
    events = _client_events(out)
    if case.endpoint == "messages":
        text = "".join(
            e["delta"].get("text", "") for e in events if e["type"] == "content_block_delta"
        )
        assert events[-1] == {"type": "message_stop"}
    else:
        text = "".join(c["delta"].get("content") or "" for e in events for c in e["choices"])
        assert out.endswith(b"data: [DONE]\n\n")
        usage_chunks = [e for e in events if e.get("usage")]
        assert len(usage_chunks) == (1 if wants_usage else 0)
        if wants_usage:
            assert usage_chunks[0]["choices"] == []
            assert usage_chunks[0]["usage"]["prompt_tokens"] == case.expected.input
    assert text == case.text


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("case", BODIES, ids=lambda c: c.name)
def test_non_streamed_answers(case: BodyCase, spacing: str):
    raw = render_body(case.body, spacing)
    reply = adapter_for(case.provider).reply(case.endpoint, raw, orjson.loads(raw), case.model)
    assert_billed(case, reply.usage)
    if case.passthrough:
        assert reply.body == raw  # the client gets the provider's own bytes


@pytest.mark.parametrize("case", STREAMS[:1] + STREAMS[-2:-1], ids=lambda c: c.name)
def test_a_cut_stream_never_invents_usage(case: StreamCase):
    upstream, _ = render_stream(case.events, Style(spacing="spaced"), drop_added=False)
    # Cut inside the JSON that carries the final usage (before its closing braces): nothing
    # may be read from the torso.
    marker = b'"output_tokens": 210' if case.provider == "anthropic" else b'"prompt_tokens": 1200'
    for cut in range(upstream.rindex(marker) - 30, upstream.rindex(marker) + len(marker) + 2):
        streamer = adapter_for(case.provider).streamer(case.endpoint, False, case.model)
        streamer.feed(upstream[:cut])
        streamer.finish()
        assert not streamer.done
        assert streamer.usage.output_tokens != case.expected.output
        assert streamer.estimated_output_tokens() >= 1


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_upstream_is_asked_for_the_identity_encoding(provider: str):
    # The gateway relays bodies undecoded (auto_decompress=False) and parses streams as they
    # pass: a gzip answer would be unreadable, so no adapter may let aiohttp offer gzip.
    cred = Credential(1, provider, "c", "https://upstream.example/v1", None, None, 30, "s")
    adapter = adapter_for(provider)
    endpoint = "chat" if "chat" in adapter.native | adapter.translated else "messages"
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    up = adapter.build(endpoint, body, "gemini-2.5-flash", cred, True)
    assert up.headers["accept-encoding"] == "identity"


sse_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(
            st.none() | sse_text.filter(lambda s: s.strip() == s and s),
            st.lists(sse_text, min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=6,
    ),
    eols=st.lists(st.sampled_from(EOLS), min_size=1, max_size=3),
    space=st.booleans(),
    comments=st.booleans(),
    data=st.data(),
)
def test_sse_decoder_reads_any_valid_spelling(events, eols, space, comments, data):
    """Names and multi-line data survive any line endings (mixed), comments and splits; the
    raw bytes of the blocks put back together are exactly the input."""
    stream = []
    for i, (name, lines) in enumerate(events):
        eol = eols[i % len(eols)]
        block = [f"event:{' ' if space else ''}{name}"] if name else []
        if comments:
            block.append(": keep-alive")
        block += ["data:" + (" " if space else "") + line for line in lines]
        stream.append(eol.join(block) + eol + eol)
    upstream = "".join(stream).encode()
    decoder = SSEDecoder()
    cuts, bytewise = _draw_cuts(data, upstream)
    decoded = []
    points = sorted(set(cuts)) if not bytewise else list(range(1, len(upstream)))
    for a, b in zip([0, *points], [*points, len(upstream)]):
        decoded += decoder.feed(upstream[a:b])
    decoded += decoder.close()
    assert b"".join(e.raw for e in decoded) == upstream
    real = [e for e in decoded if e.data is not None]

    def value(line: str) -> str:  # the one optional space after `data:` is not data
        return line if space or not line.startswith(" ") else line[1:]

    want = [
        (name.encode() if name else None, "\n".join(map(value, lines)).encode())
        for name, lines in events
    ]
    assert [(e.name, e.data) for e in real] == want


def _compress(data: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.compress(data)
    if encoding == "raw-deflate":
        z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return z.compress(data) + z.flush()
    return zlib.compress(data)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate"])
@WIRE
@given(data=st.data())
def test_a_compressed_stream_is_decoded_before_it_is_read(encoding: str, data):
    case = STREAMS[0]
    style = data.draw(styles, label="style")
    upstream, client = render_stream(case.events, style, drop_added=True)
    wire = _compress(upstream, encoding)
    decoder = BodyDecoder("deflate" if encoding == "raw-deflate" else encoding)
    streamer = adapter_for(case.provider).streamer(case.endpoint, False, case.model)
    cuts, bytewise = _draw_cuts(data, wire)
    points = list(range(1, len(wire))) if bytewise else sorted(set(cuts))
    out = b"".join(
        streamer.feed(decoder.feed(wire[a:b])) for a, b in zip([0, *points], [*points, len(wire)])
    )
    out += streamer.feed(decoder.flush()) + streamer.finish()
    assert out == client
    assert_billed(case, streamer.usage)


def test_compressed_bodies_bombs_and_unknown_encodings():
    body = render_body(BODIES[0].body, "spaced")
    assert decode_body(gzip.compress(body), "gzip") == body
    assert decode_body(body, None) == decode_body(body, "identity") == body
    with pytest.raises(ProviderError) as bomb:
        BodyDecoder("gzip", limit=1000).feed(gzip.compress(b"0" * 100_000))
    assert bomb.value.status == 502 and bomb.value.error_type == "upstream_malformed"
    with pytest.raises(ProviderError):
        BodyDecoder("br")
    with pytest.raises(ProviderError):
        decode_body(b"not gzip at all", "gzip")
