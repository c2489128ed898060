"""Property (tag) and customer budgets through a real gateway: checked in the same admission as
the other scopes, refused at their cap, other values unaffected; counters rebuilt from the
ledger count only the tagged calls."""

from __future__ import annotations

import httpx
import pytest

from tests.billing.test_enforcement_e2e import _issue, stack, world  # noqa: F401
from tests.gateway.servers import snapshots_expire

pytestmark = pytest.mark.slow


def _call(gateway, key, **headers):
    return httpx.post(
        f"{gateway}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}", **headers},
        json={
            "model": "gpt-4o",
            "max_tokens": 100,  # $0.10 a call
            "messages": [{"role": "user", "content": "hi [[sim:tokens=100]]"}],
        },
        timeout=30,
    )


def test_property_and_customer_budgets_bind_only_their_value(world):  # noqa: F811
    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    cast, _sim_url, gateways = world
    gateway = gateways[0]
    with workspace_scope(cast.workspace.pk):
        apollo = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="property",
            property_name="project",
            property_value="apollo",
            amount_usd="0.15",
            period="month",
            throttle_at=None,
        )
        acme = budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="customer",
            customer_id="acme",
            amount_usd="0.15",
            period="month",
            throttle_at=None,
        )
    key = _issue(cast)
    snapshots_expire()
    tag = {"Alephant-Property-project": "apollo"}
    assert _call(gateway, key, **tag).status_code == 200
    refused = _call(gateway, key, **tag)
    assert refused.status_code == 402
    details = refused.json()["error"]["alephant"]
    assert details["budget_id"] == apollo.pk and details["scope_key"] == "project=apollo"
    assert _call(gateway, key, **{"Alephant-Property-project": "gemini"}).status_code == 200
    assert _call(gateway, key).status_code == 200

    customer = {"Alephant-Customer": "acme"}
    assert _call(gateway, key, **customer).status_code == 200
    refused = _call(gateway, key, **customer)
    assert refused.status_code == 402
    assert refused.json()["error"]["alephant"]["budget_id"] == acme.pk
    assert _call(gateway, key, **{"Alephant-Customer": "globex"}).status_code == 200
