"""OpenAI's organization costs and usage APIs (admin key, `Authorization: Bearer sk-admin-...`).

* `GET /v1/organization/costs?start_time=&end_time=&bucket_width=1d&group_by=project_id&
  group_by=line_item&limit=` -> buckets of `organization.costs.result`
  `{amount: {value: number, currency: "usd"}, line_item, project_id}`; a line item reads
  "<model>, input" / "<model>, cached input" / "<model>, output".
* `GET /v1/organization/usage/completions?...&group_by=model&group_by=api_key_id` -> buckets of
  `organization.usage.completions.result` `{input_tokens, input_cached_tokens, output_tokens,
  num_model_requests, model, api_key_id, project_id, ...}`; `input_tokens` includes cached.
Times are Unix seconds, `end_time` exclusive. Paging: `has_more` + `next_page` -> `page=`.
"""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

import httpx

from reconciliation.providers.base import (
    AdminAPIError,
    Line,
    Report,
    as_int,
    day_of,
    paged,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
COSTS_LIMIT = "180"  # documented range 1..180 for costs
USAGE_LIMIT = "31"  # documented maximum for 1d buckets


def _epoch(day: dt.date) -> str:
    return str(calendar.timegm(day.timetuple()))


def model_of_line_item(line_item: str | None) -> str:
    """'gpt-4o-mini, input' -> 'gpt-4o-mini'; a line item without a comma is kept whole."""
    text = (line_item or "").strip()
    return text.rsplit(",", 1)[0].strip() if "," in text else text


def fetch_report(
    client: httpx.Client, *, base_url: str, secret: str, since: dt.date, until: dt.date
) -> Report:
    """Costs and completions usage for the UTC days `since`..`until` (inclusive)."""
    base = (base_url or DEFAULT_BASE_URL).rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    headers = {"Authorization": f"Bearer {secret}"}
    window = [
        ("start_time", _epoch(since)),
        ("end_time", _epoch(until + dt.timedelta(days=1))),
        ("bucket_width", "1d"),
    ]
    report = Report()
    costs = [*window, ("group_by", "project_id"), ("group_by", "line_item")]
    for bucket in paged(
        client,
        f"{base}/organization/costs",
        params=[*costs, ("limit", COSTS_LIMIT)],
        headers=headers,
    ):
        day = day_of(bucket["start_time"])
        report.days.add(day)
        for result in bucket.get("results") or []:
            amount = result.get("amount") or {}
            currency = str(amount.get("currency") or "usd").lower()
            if currency != "usd":
                raise AdminAPIError(f"unsupported currency {currency!r}", permanent=True)
            report.lines.append(
                Line(
                    day=day,
                    kind="cost",
                    model=model_of_line_item(result.get("line_item")),
                    key_id=result.get("project_id") or "",
                    line_item=result.get("line_item") or "",
                    cost_usd=Decimal(str(amount.get("value") or 0)),
                )
            )
    usage = [*window, ("group_by", "model"), ("group_by", "api_key_id")]
    for bucket in paged(
        client,
        f"{base}/organization/usage/completions",
        params=[*usage, ("limit", USAGE_LIMIT)],
        headers=headers,
    ):
        day = day_of(bucket["start_time"])
        for result in bucket.get("results") or []:
            report.lines.append(
                Line(
                    day=day,
                    kind="usage",
                    model=result.get("model") or "",
                    key_id=result.get("api_key_id") or "",
                    input_tokens=as_int(result.get("input_tokens")),
                    cached_tokens=as_int(result.get("input_cached_tokens")),
                    output_tokens=as_int(result.get("output_tokens")),
                    requests=as_int(result.get("num_model_requests")),
                )
            )
    return report
