"""Pieces every translation uses: tool-call arguments, data URLs, merged turns, stop lists."""

from __future__ import annotations

from typing import Any

import orjson


def parse_arguments(text: str | None, fallback: dict[str, Any]) -> Any:
    """A tool call's JSON arguments; `fallback` when the model wrote something that isn't JSON."""
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return fallback


def dump_arguments(args: Any) -> str:
    return orjson.dumps(args or {}).decode()


def split_data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:<type>;base64,<data>` URL, else None."""
    if url.startswith("data:") and ";base64," in url:
        mime, data = url[5:].split(";base64,", 1)
        return mime, data
    return None


def append_turn(turns: list[dict[str, Any]], role: str, key: str, items: list[Any]) -> None:
    """Append a turn, merging into the last one when the role repeats (Anthropic and Gemini
    both want alternating roles)."""
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def stop_list(stop: Any) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop)


def wants_json(body: dict[str, Any]) -> bool:
    return (body.get("response_format") or {}).get("type") in ("json_object", "json_schema")
