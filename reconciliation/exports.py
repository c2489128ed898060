"""CSV of the comparison (API `?format=csv` and the page's export): exact amounts."""

from __future__ import annotations

from core.money import usd_exact
from reconciliation.selectors import Comparison
from workspaces.tables import Table, csv_response

HEADERS = [
    "day", "provider", "model", "provider_reported", "provider_cost_usd", "ledger_cost_usd",
    "difference_usd", "capture_rate_pct", "provider_input_tokens", "ledger_input_tokens",
    "provider_cached_tokens", "ledger_cached_tokens", "provider_output_tokens",
    "ledger_output_tokens", "provider_requests", "ledger_requests",
]  # fmt: skip


def comparison_table(rows: list[Comparison], *, name: str = "reconciliation") -> Table:
    table = Table(name, HEADERS)
    for r in rows:
        rate = r.capture_rate
        table.rows.append(
            [
                r.day.isoformat(), r.provider, r.model, r.reported, usd_exact(r.theirs.cost),
                usd_exact(r.ours.cost), usd_exact(r.difference),
                "" if rate is None else f"{rate:.4f}", r.theirs.input_tokens,
                r.ours.input_tokens, r.theirs.cached_tokens, r.ours.cached_tokens,
                r.theirs.output_tokens, r.ours.output_tokens, r.theirs.requests,
                r.ours.requests,
            ]
        )  # fmt: skip
    return table


def comparison_csv(rows: list[Comparison], *, filename: str):
    return csv_response(comparison_table(rows), filename=filename)
