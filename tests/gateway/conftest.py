"""Fixtures for end-to-end gateway tests (opt-in: nothing here is autouse).

`gateway_stack` (session, tests/conftest.py): the upstream simulator and a real uvicorn serving
`alephant.asgi:application` against the test database and Redis db.
`gw` (function, transactional): the standard cast plus provider keys pointing at the
simulator (OpenAI, Anthropic, Gemini) and a gateway key for `cast.member`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.cast import Cast, build_cast
from tests.gateway.servers import Stack


@dataclass
class GW:
    cast: Cast
    stack: Stack
    key: str
    key_obj: object
    base: str  # http://host:port/v1

    def ledger(self, **filters):
        from billing.models import UsageRecord
        from gateway.ledger_writer import LedgerWriter
        from workspaces.tenancy import workspace_scope

        LedgerWriter(claim_idle_ms=0).drain()
        with workspace_scope(self.cast.workspace.pk):
            return list(UsageRecord.objects.filter(**filters).order_by("created_at", "id"))


def add_provider_keys(cast: Cast, sim_url: str) -> None:
    from gateway.services.keys import provider_key_create
    from workspaces.tenancy import workspace_scope

    ws = cast.workspace
    with workspace_scope(ws.pk):
        provider_key_create(
            workspace=ws,
            provider="openai",
            name="oai",
            secret="sk-sim-openai-0001",
            base_url=sim_url + "/v1",
        )
        provider_key_create(
            workspace=ws,
            provider="anthropic",
            name="ant",
            secret="sk-ant-sim-0002",
            base_url=sim_url,
        )
        provider_key_create(
            workspace=ws, provider="gemini", name="gem", secret="gem-sim-0003", base_url=sim_url
        )


def issue_key(cast: Cast, **kwargs):
    from gateway.services.keys import gateway_key_create
    from workspaces.tenancy import workspace_scope

    kwargs.setdefault("member", cast.member)
    with workspace_scope(cast.workspace.pk):
        return gateway_key_create(
            workspace=cast.workspace, name=kwargs.pop("name", "test"), **kwargs
        )


@pytest.fixture
def gw(transactional_db, gateway_stack, redis_client) -> GW:
    cast = build_cast()
    add_provider_keys(cast, gateway_stack.sim_url)
    key_obj, raw = issue_key(cast)
    gateway_stack.sim_reset()
    return GW(cast, gateway_stack, raw, key_obj, gateway_stack.gw_url + "/v1")
