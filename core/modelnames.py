"""The grammar of a model name, and the one way a name becomes part of an upstream URL.

Django-free, no first-party imports: the gateway checks every `model` (and
`Alephant-Fallback-Model`) against it before routing, and the provider adapters build URLs
only through `url_segment`.

Why so strict: Gemini and Azure put the model in the URL path. A name carrying `#`, `?`, `%`,
`/..` or whitespace changed which URL the gateway called (`gemini-2.5-pro:generateContent#
gemini-2.0-flash-lite` ran 2.5-pro upstream while Alephant priced flash-lite; `../../x#`
POSTed to an arbitrary path with the workspace's key). Refusing anything that can change a URL,
and percent-encoding what is left as one path segment, makes "the model priced" and "the model
called" the same string.

Allowed: 1-128 characters from `A-Z a-z 0-9 . _ : / @ + -`, starting with a letter or digit
(covers `gpt-4o-2024-08-06`, `llama3.1:8b`, `claude-3-5-sonnet@20240620`,
`meta-llama/Llama-3-70b`, `openai/gpt-4o` routing prefixes, `ft:gpt-4o:org::id`). A `/`
may only separate non-empty segments that are not `.` or `..`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

MAX_MODEL_NAME = 128

_GRAMMAR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")


class InvalidModelName(ValueError):
    """The string is not a model name this gateway will route, price or put in a URL."""


def model_name_problem(name: object) -> str | None:
    """Why `name` is not a valid model name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > MAX_MODEL_NAME:
        return f"must be at most {MAX_MODEL_NAME} characters"
    if _GRAMMAR.fullmatch(name) is None:
        return (
            "may only contain letters, digits and . _ : / @ + - "
            "and must start with a letter or digit"
        )
    # fullmatch above already excludes a leading `/`; these catch empty and dot segments.
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return "must not contain empty, `.` or `..` path segments"
    return None


def model_name_check(name: object) -> str:
    """`name` itself when valid; raises `InvalidModelName` otherwise."""
    problem = model_name_problem(name)
    if problem is not None:
        raise InvalidModelName(f"Invalid model name {name!r}: {problem}.")
    return name  # type: ignore[return-value]  # model_name_problem proved it a str


def url_segment(value: str) -> str:
    """`value` as exactly one percent-encoded URL path segment (no `/`, `:` or `%` left raw).

    Model names are checked first: a string that fails the grammar never reaches a URL.
    """
    return quote(model_name_check(value), safe="")
