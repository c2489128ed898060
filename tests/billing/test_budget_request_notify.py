"""Approvers hear of a budget request: Slack and email with signed approve/deny links (never
to the requester), a signed webhook with the request JSON."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

from django.core import mail
from django.utils import timezone

from billing.services.alerts import alert_channel_create
from billing.services.budget_request_notify import link_read
from billing.services.budget_requests import budget_request_create
from billing.services.budgets import budget_create
from tests.billing.test_alerts import receiver  # noqa: F401  (the local HTTP receiver fixture)


def test_slack_email_and_webhook_hear_of_a_request(
    scoped,
    receiver,  # noqa: F811  (the imported fixture, requested by name)
    django_capture_on_commit_callbacks,
):
    url, handler = receiver
    ws = scoped.workspace
    for kind in ("slack", "webhook"):
        alert_channel_create(workspace=ws, actor=scoped.owner, kind=kind, name=kind, url=url)
    alert_channel_create(workspace=ws, actor=scoped.owner, kind="email", name="mail")
    budget = budget_create(
        workspace=ws,
        actor=scoped.owner,
        scope_type="member",
        scope_id=scoped.member.pk,
        amount_usd=Decimal("1"),
        period="month",
    )
    with django_capture_on_commit_callbacks(execute=True):
        request = budget_request_create(
            budget=budget,
            actor=scoped.member,
            amount_usd=Decimal("4.5"),
            reason="launch week",
            until=timezone.now() + timedelta(days=2),
        )
    bodies = [json.loads(body) for _headers, body in handler.requests]
    slack = next(b for b in bodies if "text" in b)
    hook = next(b for b in bodies if b.get("type") == "budget_request.created")
    assert hook["request"]["id"] == request.pk and hook["request"]["amount_usd"] == "4.500000"
    assert (
        "Alephant-Signature" in handler.requests[0][0]
        or "Alephant-Signature" in (handler.requests[1][0])
    )
    links = re.findall(r"/budget-requests/link/([^/\s]+)/", slack["text"])
    assert [link_read(t)["a"] for t in links] == ["approve", "deny"]
    assert len(mail.outbox) == 1
    assert "member@a.example" not in mail.outbox[0].to  # the requester gets no approve link
    assert "finance@a.example" in mail.outbox[0].to
    assert "/budget-requests/link/" in mail.outbox[0].body
