"""`OpenAIStream` reads the common wire shape (one `data: ` line a block, `\\n` endings, a read
starting at a block boundary) without building events. For any stream, split anywhere, it must
decide exactly what the general decoder path decides: the bytes the client gets, the usage, the
end marker and the output estimate. The general path (`SSEDecoder` + `_relay`) is the reference.
"""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.hotpath.providers.openai import OpenAIStream


class ReferenceStream(OpenAIStream):
    def feed(self, chunk: bytes) -> bytes:
        return self._relay(self.decoder.feed(chunk))


text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
usage = st.fixed_dictionaries(
    {"prompt_tokens": st.integers(0, 10**6), "completion_tokens": st.integers(0, 10**6)}
)


def _chunk(draw) -> bytes:
    kind = draw(st.sampled_from(["content", "usage-only", "usage-last", "escaped", "mentions"]))
    choice = {"index": 0, "delta": {"content": draw(text)}}
    if kind == "content":
        event = {"choices": [choice]}
    elif kind == "usage-only":
        event = {"choices": [], "usage": draw(usage)}
    elif kind == "usage-last":
        event = {"choices": [choice], "usage": draw(usage)}
    elif kind == "mentions":  # the word in the text only: read, nothing billed from it
        event = {"choices": [{"index": 0, "delta": {"content": "usage " + draw(text)}}]}
    else:  # the key spelled with a JSON escape
        u = draw(usage)
        return b'{"choices":[],"\\u0075sage":' + orjson.dumps(u) + b"}"
    return orjson.dumps(event, option=orjson.OPT_INDENT_2 if draw(st.booleans()) else 0)


@st.composite
def streams(draw) -> bytes:
    blocks = []
    for _ in range(draw(st.integers(0, 8))):
        shape = draw(
            st.sampled_from(["data", "data", "data", "bare", "comment", "named", "broken", "crlf"])
        )
        data = _chunk(draw)
        if shape == "bare":  # `data:` without the space
            blocks.append(b"data:" + data.replace(b"\n", b"\ndata:") + b"\n\n")
        elif shape == "comment":
            blocks.append(b": keep-alive\n\n")
        elif shape == "named":
            blocks.append(b"event: chunk\ndata: " + data.replace(b"\n", b"\ndata: ") + b"\n\n")
        elif shape == "broken":
            blocks.append(b"data: " + data[: len(data) // 2].replace(b"\n", b" ") + b"\n\n")
        elif shape == "crlf":
            blocks.append(b"data: " + data.replace(b"\n", b" ") + b"\r\n\r\n")
        else:  # one line: the fast path's shape (multi-line JSON becomes several data lines)
            blocks.append(b"data: " + data.replace(b"\n", b"\ndata: ") + b"\n\n")
    done = draw(st.sampled_from([b"data: [DONE]\n\n", b"data:  [DONE] \n\n", b"data: [DONE]", b""]))
    return b"".join(blocks) + done


def _run(stream_cls, endpoint, wants, pieces):
    streamer = stream_cls(endpoint, wants)
    out = b"".join(streamer.feed(piece) for piece in pieces) + streamer.finish()
    return out, streamer.usage, streamer.done, streamer.estimated_output_tokens()


@settings(max_examples=400, deadline=None)
@given(
    upstream=streams(),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
    wants=st.booleans(),
    endpoint=st.sampled_from(["chat", "completions"]),
)
def test_openai_stream_fast_path_decides_as_the_decoder(upstream, cuts, wants, endpoint):
    points = sorted({c for c in cuts if c < len(upstream)})
    pieces = [upstream[a:b] for a, b in zip([0, *points], [*points, len(upstream)])]
    fast = _run(OpenAIStream, endpoint, wants, pieces)
    assert fast == _run(ReferenceStream, endpoint, wants, pieces)


def test_the_usage_chunk_is_dropped_in_the_middle_of_a_read():
    """Fast path, one read: the usage-only chunk removed between two kept events, and a chunk
    that only mentions the word kept as it is."""
    content = b'data: {"choices":[{"delta":{"content":"usage?"}}]}\n\n'
    usage_only = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}\n\n'
    upstream = content + usage_only + b"data: [DONE]\n\n"
    streamer = OpenAIStream("chat", False)
    assert streamer.feed(upstream) == content + b"data: [DONE]\n\n"
    assert streamer.done and streamer.usage.reported
    assert (streamer.usage.input_tokens, streamer.usage.output_tokens) == (3, 4)
    shown = OpenAIStream("chat", True)
    assert shown.feed(upstream) == upstream
