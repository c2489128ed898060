"""Anthropic's Admin usage and cost API (admin key, `x-api-key: sk-ant-admin...`).

* `GET /v1/organizations/cost_report?starting_at=&ending_at=&bucket_width=1d&
  group_by[]=description&limit=` -> buckets `{starting_at, ending_at, results: [{amount,
  currency, cost_type, description, model, token_type, service_tier, context_window,
  workspace_id}]}`; `amount` is a decimal **string in cents** ("123.45" USD = $1.2345).
* `GET /v1/organizations/usage_report/messages?...&group_by[]=model&group_by[]=api_key_id` ->
  results `{uncached_input_tokens, cache_read_input_tokens, cache_creation:
  {ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}, output_tokens, model, api_key_id}`.
Times are RFC 3339; buckets snap to UTC days. Paging: `has_more` + `next_page` -> `page=`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import httpx

from reconciliation.providers.base import (
    AdminAPIError,
    Line,
    Report,
    as_int,
    day_of,
    paged,
)

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
LIMIT = "31"  # documented maximum for 1d buckets
CENTS = Decimal(100)


def _rfc3339(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _cache_writes(result: dict[str, Any]) -> int:
    """Cache-write tokens: nested `cache_creation` as documented; flat spellings tolerated."""
    creation = result.get("cache_creation") or {}
    return (
        as_int(creation.get("ephemeral_5m_input_tokens"))
        + as_int(creation.get("ephemeral_1h_input_tokens"))
        + as_int(result.get("cache_creation_5m_input_tokens"))
        + as_int(result.get("cache_creation_1h_input_tokens"))
    )


def fetch_report(
    client: httpx.Client, *, base_url: str, secret: str, since: dt.date, until: dt.date
) -> Report:
    """Cost report and messages usage for the UTC days `since`..`until` (inclusive)."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/").removesuffix("/v1")
    headers = {"x-api-key": secret, "anthropic-version": API_VERSION}
    window = [
        ("starting_at", _rfc3339(since)),
        ("ending_at", _rfc3339(until + dt.timedelta(days=1))),
        ("bucket_width", "1d"),
        ("limit", LIMIT),
    ]
    report = Report()
    for bucket in paged(
        client,
        f"{base}/v1/organizations/cost_report",
        params=[*window, ("group_by[]", "description")],
        headers=headers,
    ):
        day = day_of(bucket["starting_at"])
        report.days.add(day)
        for result in bucket.get("results") or []:
            if str(result.get("currency") or "USD").upper() != "USD":
                raise AdminAPIError("unsupported currency", permanent=True)
            report.lines.append(
                Line(
                    day=day,
                    kind="cost",
                    model=result.get("model") or "",
                    key_id=result.get("workspace_id") or "",
                    line_item=result.get("description") or result.get("cost_type") or "",
                    cost_usd=Decimal(str(result.get("amount") or "0")) / CENTS,
                )
            )
    for bucket in paged(
        client,
        f"{base}/v1/organizations/usage_report/messages",
        params=[*window, ("group_by[]", "model"), ("group_by[]", "api_key_id")],
        headers=headers,
    ):
        day = day_of(bucket["starting_at"])
        for result in bucket.get("results") or []:
            cached = as_int(result.get("cache_read_input_tokens"))
            report.lines.append(
                Line(
                    day=day,
                    kind="usage",
                    model=result.get("model") or "",
                    key_id=result.get("api_key_id") or "",
                    input_tokens=as_int(result.get("uncached_input_tokens"))
                    + cached
                    + _cache_writes(result),
                    cached_tokens=cached,
                    output_tokens=as_int(result.get("output_tokens")),
                )
            )
    return report
