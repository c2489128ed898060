from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from django.utils import timezone

from attribution.services.rollups import rollup_workspace
from tests.attribution.factories import usage
from workspaces.models import Agent
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope


@dataclass
class SpendWorld:
    cast: object
    agent: Agent
    key: object
    outsider_agent: Agent
    outsider_key: object


@pytest.fixture
def world(cast) -> SpendWorld:
    """Workspace A with an agent, a key and some traffic this month; workspace B likewise."""
    from gateway.services.keys import gateway_key_create

    now = timezone.now()
    with workspace_scope(cast.workspace.pk):
        agent = agent_create(
            workspace=cast.workspace, slug="summarizer", name="Summarizer", owner=cast.member
        )
        key, _raw = gateway_key_create(workspace=cast.workspace, name="laptop", member=cast.member)
        m = cast.member
        usage(
            cast.workspace,
            at=now - dt.timedelta(minutes=1),
            cost="1.25",
            member=m,
            department=m.department,
            gateway_key=key,
            session_id="run-a",
        )
        usage(
            cast.workspace,
            at=now - dt.timedelta(minutes=2),
            cost="0.50",
            member=m,
            department=m.department,
            agent=agent,
            model="gpt-4o",
            session_id="run-a",
        )
        usage(
            cast.workspace,
            at=now - dt.timedelta(minutes=3),
            cost="2.000000000001",
            member=cast.admin,
            provider="anthropic",
            model="claude-3-5-haiku",
        )
        rollup_workspace(workspace=cast.workspace)
    with workspace_scope(cast.other_workspace.pk):
        o_agent = agent_create(
            workspace=cast.other_workspace, slug="spy", name="Spy", owner=cast.outsider
        )
        o_key, _raw = gateway_key_create(
            workspace=cast.other_workspace, name="b-key", member=cast.outsider
        )
        usage(
            cast.other_workspace,
            at=now - dt.timedelta(minutes=1),
            cost="99",
            member=cast.outsider,
            agent=o_agent,
            gateway_key=o_key,
            session_id="run-b",
            model="secret-model",
        )
        rollup_workspace(workspace=cast.other_workspace)
    return SpendWorld(cast, agent, key, o_agent, o_key)
