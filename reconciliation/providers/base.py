"""What every admin-API client returns, and the paging loop they share.

Both providers answer `{"data": [bucket, ...], "has_more": bool, "next_page": str | null}` and
take the `next_page` value back as `page=`; a bucket is one UTC day. Amounts are parsed as
`Decimal` straight from the JSON text (`parse_float=Decimal`), never through a float.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

MAX_PAGES = 200  # a provider that never stops paging must not hold a worker forever


class AdminAPIError(Exception):
    """The provider refused or failed; `permanent` when retrying will not help (401/403/400)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class Line:
    day: dt.date
    kind: str  # "cost" | "usage"
    model: str = ""
    key_id: str = ""
    line_item: str = ""
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0  # including cached
    cached_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


@dataclass
class Report:
    """Days the provider answered for (even with no charge) and their lines."""

    days: set[dt.date] = field(default_factory=set)
    lines: list[Line] = field(default_factory=list)


def paged(
    client: httpx.Client, url: str, *, params: list[tuple[str, str]], headers: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Every bucket of every page, following `next_page` while `has_more`."""
    page: str | None = None
    for _ in range(MAX_PAGES):
        query: list[tuple[str, str | int | float | bool | None]] = [*params]
        if page:
            query.append(("page", page))
        try:
            response = client.get(url, params=query, headers=headers)
        except httpx.HTTPError as exc:
            raise AdminAPIError(f"could not reach the provider: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise AdminAPIError(
                f"the provider answered HTTP {response.status_code}",
                permanent=response.status_code in (400, 401, 403, 404),
            )
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError as exc:
            raise AdminAPIError("the provider's answer is not JSON") from exc
        yield from body.get("data") or []
        page = body.get("next_page")
        if not body.get("has_more") or not page:
            return
    raise AdminAPIError("the provider kept paging past the limit")


def day_of(value: Any) -> dt.date:
    """A bucket start as a UTC date: Unix seconds (OpenAI) or RFC 3339 (Anthropic)."""
    if isinstance(value, int | Decimal):
        return dt.datetime.fromtimestamp(int(value), tz=dt.UTC).date()
    text = str(value).replace("Z", "+00:00")
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC).date()


def as_int(value: Any) -> int:
    return int(value or 0)
