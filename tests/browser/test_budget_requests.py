"""In a real browser against a real server: a member's call is refused with 402, the member
opens the request link from the error and files a request, the approver opens the signed link
from the notification email and approves, and the member's next call is admitted."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from tests.browser.conftest import log_in
from tests.cast import PASSWORD, build_cast
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _call(url: str, raw: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {raw}"},
        json={
            "model": "gpt-4o",
            "max_tokens": 600,
            "messages": [{"role": "user", "content": "hi [[sim:tokens=500]]"}],
        },
        timeout=30,
    )


def _link(log, action: str) -> str:
    deadline = time.monotonic() + 10
    pattern = rf"{action.capitalize()}: (http://\S+/budget-requests/link/\S+/)"
    while time.monotonic() < deadline:
        found = re.findall(pattern, log.read_text(errors="replace"))
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError("no budget request email")


def test_402_link_request_signed_approval_next_call_admitted(live_app, page, settings):
    from billing.services.alerts import alert_channel_create
    from billing.services.budgets import budget_create
    from gateway.services.keys import gateway_key_create, provider_key_create

    # The snapshot (with the 402's request link) is published from this process here.
    settings.SITE_URL = live_app.url
    cast = build_cast(prefix="br-")
    ws, m = cast.workspace, cast.member
    with workspace_scope(ws.pk):
        provider_key_create(
            workspace=ws,
            provider="openai",
            name="sim",
            secret="sk-sim-000001",
            base_url=live_app.simulator + "/v1",
        )
        _key, raw = gateway_key_create(workspace=ws, name="laptop", member=m)
        alert_channel_create(workspace=ws, actor=cast.owner, kind="email", name="finance mail")
        budget_create(
            workspace=ws,
            actor=cast.admin,
            scope_type="member",
            scope_id=m.pk,
            amount_usd=Decimal("0.000001"),
            period="day",
            throttle_at=None,
        )
    refused = _call(live_app.url, raw)
    assert refused.status_code == 402
    request_url = refused.json()["error"]["alephant"]["request_url"]
    assert request_url.startswith(live_app.url + "/budget-requests/new/?budget=")

    log_in(page, live_app.url, m.user.email, PASSWORD)
    page.goto(request_url)
    page.fill("input[name=amount_usd]", "5")
    page.fill("textarea[name=reason]", "demo for the board")
    until = datetime.now(UTC) + timedelta(days=1)
    page.fill("input[name=until]", until.strftime("%Y-%m-%d %H:%M"))
    page.click("button[data-submit]")
    page.wait_for_url(re.compile(r".*/budget-requests/$"))
    assert "demo for the board" in page.inner_text("main")

    approve = _link(live_app.log, "approve")
    page.context.clear_cookies()  # the link is the authority: no session needed
    page.goto(approve)
    page.click("button[data-decide]")
    page.wait_for_selector("[data-status]")
    assert page.inner_text("[data-status]") == "approved"
    decided = time.monotonic()
    while _call(live_app.url, raw).status_code != 200:
        assert time.monotonic() - decided < 2.0, "the increase was not honoured"
        time.sleep(0.05)
    page.goto(approve)  # a second visit offers nothing to click: the request is decided
    assert page.locator("button[data-decide]").count() == 0
