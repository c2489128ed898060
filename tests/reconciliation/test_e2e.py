"""End to end: calls through the real gateway, calls around it with the same provider key, the
provider's admin APIs (simulator, real HTTP), the pull, the comparison and the API."""

from __future__ import annotations

import datetime as dt

import anthropic
import httpx
import openai
import pytest

from billing.models import Alert
from core.pricing import cost_usd
from reconciliation import selectors
from reconciliation.services.pull import provider_costs_pull
from tests.reconciliation.conftest import (
    ANTHROPIC_ADMIN,
    OPENAI_ADMIN,
    OPENAI_CALL_KEY,
    add_admin_keys,
)
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _pull_and_compare(gw):
    ws = gw.cast.workspace
    gw.ledger()  # drain the usage stream into the ledger
    today = dt.datetime.now(dt.UTC).date()
    with workspace_scope(ws.pk):
        for provider in ("openai", "anthropic"):
            assert provider_costs_pull(workspace=ws, provider=provider, days=2).error == ""
        rows = selectors.comparison(workspace=ws, since=today, until=today)
    return {(r.provider, r.model): r for r in rows}


def test_all_through_alephant_is_full_capture_then_calls_around_it_show(gw):
    add_admin_keys(gw.cast.workspace, gw.stack.sim_url)
    oai = openai.OpenAI(base_url=gw.base, api_key=gw.key, max_retries=0)
    ant = anthropic.Anthropic(base_url=gw.base.removesuffix("/v1"), api_key=gw.key, max_retries=0)
    for i in range(3):
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"hello {i} [[sim:cached=2]]"}],
        )
    with oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "streamed"}],
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        for _ in stream:
            pass
    for i in range(2):
        ant.messages.create(
            model="claude-3-5-haiku-latest",
            max_tokens=50,
            messages=[{"role": "user", "content": f"hi claude {i}"}],
        )

    rows = _pull_and_compare(gw)
    assert set(rows) == {("openai", "gpt-4o-mini"), ("anthropic", "claude-3-5-haiku-latest")}
    for row in rows.values():
        assert row.reported and row.ours.cost > 0
        assert row.theirs.cost == row.ours.cost and row.capture_rate == 100
        assert row.input_difference == row.output_difference == row.cached_difference == 0
    assert rows[("openai", "gpt-4o-mini")].ours.requests == 4

    # Someone uses the same provider key directly, around Alephant.
    direct = httpx.post(
        gw.stack.sim_url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {OPENAI_CALL_KEY}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "around it"}]},
    ).json()["usage"]
    outside = cost_usd(
        "openai",
        "gpt-4o-mini",
        input_tokens=direct["prompt_tokens"],
        output_tokens=direct["completion_tokens"],
    )
    rows = _pull_and_compare(gw)
    row = rows[("openai", "gpt-4o-mini")]
    assert row.difference == outside > 0  # the exact shortfall, to the Decimal
    assert row.input_difference == direct["prompt_tokens"]
    assert row.capture_rate < 100
    assert rows[("anthropic", "claude-3-5-haiku-latest")].capture_rate == 100

    # The admin keys went to the admin endpoints only; the call key never did.
    stats = gw.stack.sim_stats()
    assert set(stats["admin_auths"]) == {OPENAI_ADMIN, ANTHROPIC_ADMIN}
    assert stats["last_auth"] == f"Bearer {OPENAI_CALL_KEY}"

    # The API says the same, exactly.
    from django.test import Client

    from workspaces.services.tokens import api_token_create

    with workspace_scope(gw.cast.workspace.pk):
        _, token = api_token_create(member=gw.cast.finance, name="finance")
        alert_count = Alert.objects.filter(kind="reconciliation").count()
    body = (
        Client()
        .get("/api/v1/reconciliation/?provider=openai", HTTP_AUTHORIZATION=f"Bearer {token}")
        .json()
    )
    [api_row] = [r for r in body["results"] if r["model"] == "gpt-4o-mini"]
    assert api_row["difference_usd"] == f"{outside:f}".rstrip("0").ljust(4, "0")
    assert body["total"]["ledger_cost_usd"] == api_row["ledger_cost_usd"]
    assert alert_count >= 1  # 1 call of 5 outside: under the default 98 % threshold
