"""The numbers a caller reads are the ledger's, to the last digit: `Alephant-Cost-USD`, the
stream's cost trailer, `Alephant-Budget-Remaining-USD` and the budget status API (issue 11).

Through a real gateway process and the real ledger writer; no rounding anywhere on the way.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
from django.test import Client

from billing.pricing import cost_usd
from billing.services.budgets import budget_create
from core.money import usd_exact
from tests.gateway.servers import snapshots_expire
from workspaces.services.tokens import api_token_create
from workspaces.tenancy import workspace_scope

# 24 characters: 6 simulator tokens of text-embedding-3-small ($0.02 / Mtok) = $0.00000012.
TINY_INPUT = "abcdefghijklmnopqrstuvwx"


def _post(gw, path: str, body: dict, **kw) -> httpx.Response:
    headers = {"authorization": f"Bearer {gw.key}"}
    return httpx.post(gw.base + path, json=body, headers=headers, timeout=30, **kw)


def test_a_fraction_of_a_micro_dollar_is_shown_exactly(gw):
    response = _post(gw, "/embeddings", {"model": "text-embedding-3-small", "input": TINY_INPUT})
    assert response.status_code == 200, response.text
    [record] = gw.ledger(request_id=response.headers["alephant-request-id"])
    assert record.cost_usd == Decimal("0.00000012")
    assert record.cost_usd == cost_usd(
        "openai", "text-embedding-3-small", input_tokens=6, output_tokens=0
    )
    # Was "0.000001" (rounded up to the micro-dollar): 8x what the ledger holds.
    assert response.headers["alephant-cost-usd"] == "0.00000012"
    assert Decimal(response.headers["alephant-cost-usd"]) == record.cost_usd


def test_stream_header_trailer_and_ledger_agree(gw):
    body = {
        "model": "gpt-4o-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "count the digits"}],
    }
    with httpx.stream(
        "POST",
        gw.base + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {gw.key}"},
        timeout=30,
    ) as resp:
        text = resp.read().decode()
        request_id = resp.headers["alephant-request-id"]
    trailer = text.strip().splitlines()[-1]
    assert trailer.startswith(": alephant-cost-usd=")
    [record] = gw.ledger(request_id=request_id)
    assert (record.status_code, record.estimated) == (200, False)
    shown = trailer.removeprefix(": alephant-cost-usd=")
    assert Decimal(shown) == record.cost_usd and shown == usd_exact(record.cost_usd)
    # The same call unstreamed: its header carries the same exact digits as its ledger row.
    plain = _post(gw, "/chat/completions", {**body, "stream": False})
    [row] = gw.ledger(request_id=plain.headers["alephant-request-id"])
    assert plain.headers["alephant-cost-usd"] == usd_exact(row.cost_usd)
    assert Decimal(plain.headers["alephant-cost-usd"]) == row.cost_usd


def test_budget_remaining_and_status_are_exact(gw, redis_client):
    ws = gw.cast.workspace
    with workspace_scope(ws.pk):
        budget = budget_create(
            workspace=ws,
            actor=gw.cast.owner,
            scope_type="workspace",
            amount_usd=Decimal("1.000001"),
            period="month",
        )
    snapshots_expire()
    first = _post(gw, "/embeddings", {"model": "text-embedding-3-small", "input": TINY_INPUT})
    assert first.status_code == 200, first.text
    gw.ledger()  # drain: the row is in
    second = _post(gw, "/embeddings", {"model": "text-embedding-3-small", "input": TINY_INPUT})
    # What is left beside this call's own small reservation: 1.000001 - 0.00000012 - (a few
    # hundred nano-dollars). Rounded to 6 decimals (down, as before) it read "1.000000".
    shown = second.headers["alephant-budget-remaining-usd"]
    assert shown == usd_exact(Decimal(shown))
    assert Decimal("1.000000") < Decimal(shown) < Decimal("1.00000088")
    gw.ledger()

    with workspace_scope(ws.pk):
        _, token = api_token_create(member=gw.cast.owner, name="status reader")
    listed = Client().get("/api/v1/budgets/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert listed.status_code == 200, listed.content
    payload = listed.json()
    rows = payload["results"] if isinstance(payload, dict) else payload
    [status] = [b["status"] for b in rows if b["id"] == budget.pk]
    assert status["used"] == "0.00000024" and status["reserved"] == "0.00"
    assert status["remaining"] == "1.00000076"
