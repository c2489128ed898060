"""Reconciliation fixtures: admin keys pointing at the session's upstream simulator."""

from __future__ import annotations

import httpx
import pytest

from reconciliation.services.credentials import admin_credential_set
from tests.gateway.conftest import gw  # noqa: F401  (the gateway end-to-end fixture, reused)
from workspaces.tenancy import workspace_scope

OPENAI_ADMIN = "sk-admin-sim-PLAINTEXT-0001"
ANTHROPIC_ADMIN = "sk-ant-admin01-sim-PLAINTEXT-0002"
OPENAI_CALL_KEY = "sk-sim-openai-0001"  # tests/gateway/conftest.add_provider_keys
ANTHROPIC_CALL_KEY = "sk-ant-sim-0002"


class Sim:
    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        httpx.post(self.url + "/_sim/reset").raise_for_status()

    def knobs(self, **knobs) -> None:
        httpx.post(self.url + "/_sim/billing/knobs", json=knobs).raise_for_status()

    def release(self) -> None:
        httpx.post(self.url + "/_sim/billing/release").raise_for_status()

    def outside_call(self, **body) -> None:
        """Spend billed to a key without going through Alephant (any day)."""
        httpx.post(self.url + "/_sim/billing/usage", json=body).raise_for_status()

    def stats(self) -> dict:
        return httpx.get(self.url + "/_sim/stats").json()


@pytest.fixture
def sim(simulator) -> Sim:
    handle = Sim(simulator)
    handle.reset()
    return handle


def add_admin_keys(workspace, sim_url: str) -> None:
    with workspace_scope(workspace.pk):
        admin_credential_set(
            workspace=workspace, provider="openai", secret=OPENAI_ADMIN, base_url=sim_url + "/v1"
        )
        admin_credential_set(
            workspace=workspace, provider="anthropic", secret=ANTHROPIC_ADMIN, base_url=sim_url
        )
