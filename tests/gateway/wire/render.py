"""Render corpus events the many ways a valid upstream may spell them.

A `Style` picks the JSON spacing (compact, `json.dumps` spacing, indented across several
`data:` lines, keys in reverse order), the line ending (`\\n`, `\\r\\n`, `\\r`), `data:` with or
without a space, whether `event:` names are sent, and keep-alive comments between events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

DONE = "[DONE]"
SPACINGS = ("compact", "spaced", "indented", "reversed")
EOLS = ("\n", "\r\n", "\r")


@dataclass(frozen=True)
class Style:
    spacing: str = "compact"
    eol: str = "\n"
    prefix: str = "data: "
    names: bool = True
    keepalive_every: int = 0  # a `: keep-alive` comment block after every k-th event (0: none)


def _reverse(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reverse(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reverse(v) for v in value]
    return value


def dump(payload: Any, spacing: str) -> str:
    if payload == DONE:
        return DONE
    if spacing == "compact":
        return orjson.dumps(payload).decode()
    if spacing == "spaced":
        return json.dumps(payload)  # ", " and ": ", as any Python-written server sends
    if spacing == "indented":
        return json.dumps(payload, indent=2)  # several `data:` lines per event
    return json.dumps(_reverse(payload), separators=(" ,", " : "))


def render_event(name: str | None, payload: Any, style: Style) -> bytes:
    lines = [f"event: {name}"] if name and style.names else []
    lines += [style.prefix + line for line in dump(payload, style.spacing).split("\n")]
    return (style.eol.join(lines) + style.eol + style.eol).encode()


def keepalive(style: Style) -> bytes:
    return (": keep-alive" + style.eol + style.eol).encode()


def render_stream(
    events: list[tuple[str | None, Any, bool]], style: Style, *, drop_added: bool
) -> tuple[bytes, bytes]:
    """(what the upstream sends, what the client must receive from a pass-through).

    Each event is (SSE event name, JSON payload or DONE, added-by-Alephant flag); the client's
    bytes are the upstream's minus the added events when `drop_added`."""
    upstream, client = [], []
    for i, (name, payload, added) in enumerate(events):
        block = render_event(name, payload, style)
        upstream.append(block)
        if not (added and drop_added):
            client.append(block)
        if style.keepalive_every and i % style.keepalive_every == 0:
            upstream.append(keepalive(style))
            client.append(keepalive(style))
    return b"".join(upstream), b"".join(client)


def render_body(payload: Any, spacing: str) -> bytes:
    return dump(payload, spacing).encode()
