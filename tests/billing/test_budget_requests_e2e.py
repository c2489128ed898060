"""End to end through a real gateway process: a member's call is refused with 402, the member
files a request from the link in the error, an approver approves through the signed link, the
next call is admitted within a second, and once the increase ends calls are refused again."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from django.test import Client

from tests.billing.test_enforcement_e2e import _issue, stack, world  # noqa: F401
from tests.gateway.servers import snapshots_expire

pytestmark = pytest.mark.slow


def _call(gateway: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{gateway}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "model": "gpt-4o",
            "max_tokens": 100,  # worst case == actual cost == $0.10 (world's price)
            "messages": [{"role": "user", "content": "hi [[sim:tokens=100]]"}],
        },
        timeout=30,
    )


def test_refused_request_approve_admitted_then_lapses(world):  # noqa: F811
    from billing.models import BudgetRequest
    from billing.services.budget_request_notify import link_token
    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    cast, _sim_url, gateways = world
    gateway = gateways[0]
    with workspace_scope(cast.workspace.pk):
        budget = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="0.15",
            period="month",
            throttle_at=None,
        )
    key = _issue(cast)
    snapshots_expire()
    assert _call(gateway, key).status_code == 200  # $0.10 of $0.15
    refused = _call(gateway, key)
    assert refused.status_code == 402
    details = refused.json()["error"]["alephant"]
    assert details["budget_id"] == budget.pk
    url = urlsplit(details["request_url"])
    assert url.path == "/budget-requests/new/" and url.query == f"budget={budget.pk}"

    # The member follows the link and files a request that ends in a few seconds.
    member = Client()
    member.force_login(cast.member.user)
    form = member.get(f"{url.path}?{url.query}")
    assert form.status_code == 200 and f'value="{budget.pk}" selected' in form.content.decode()
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    filed = member.post(
        f"{url.path}?{url.query}",
        {
            "budget": budget.pk,
            "amount_usd": "0.10",
            "reason": "demo day",
            "until": until.isoformat(),
        },
    )
    assert filed.status_code == 302, filed.content.decode()[-2000:]
    with workspace_scope(cast.workspace.pk):
        request = BudgetRequest.objects.get(budget=budget)
        token = link_token(request=request, action="approve")

    # An approver uses the signed link from Slack/email (no login: the link is the authority).
    approver = Client()
    assert approver.get(f"/budget-requests/link/{token}/").status_code == 200
    approved = approver.post(f"/budget-requests/link/{token}/", {})
    assert b"approved" in approved.content
    decided_at = time.monotonic()
    while True:
        response = _call(gateway, key)
        if response.status_code == 200:
            break
        assert response.status_code == 402
        assert time.monotonic() - decided_at < 1.0, "the increase was not honoured within 1 s"
        time.sleep(0.05)
    honoured_in = time.monotonic() - decided_at
    assert honoured_in < 1.0

    # Spent $0.20 of $0.15 + $0.10; once the increase ends the base limit holds again, with no
    # task republishing the snapshot.
    time.sleep(max(0.0, until.timestamp() - time.time()) + 0.2)
    lapsed = _call(gateway, key)
    assert lapsed.status_code == 402, lapsed.text
    assert lapsed.json()["error"]["alephant"]["limit"] == "0.15"
