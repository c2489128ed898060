"""A member trying to step around their caps, through the REST API (acting as the member) and a
real gateway process with the upstream simulator.

* limits an admin sets on a member bind a key the member minted before, at call time;
* a member's calls count on the member's own department whichever agent they go through, and
  an agent placed in another department charges that department too (README "Budgets").
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from django.test import Client

from tests.gateway.servers import start_gateway, start_simulator
from tests.gateway.servers import test_env as gateway_env

pytestmark = pytest.mark.slow

SNAPSHOT_WAIT_S = 1.3  # the gateway keeps snapshots 1 s in process


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        env = gateway_env()
    sim, sim_url = start_simulator()
    gateway = None
    try:
        gateway = start_gateway(env)
        yield sim_url, gateway[1]
    finally:
        if gateway is not None:
            gateway[0].kill()
        sim.kill()


class Api:
    """The REST API as one cast member (their personal API token)."""

    def __init__(self, token: str) -> None:
        self.client = Client()
        self.token = token

    def __call__(self, method: str, path: str, data=None):
        kwargs = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        if data is not None:
            kwargs.update(data=json.dumps(data), content_type="application/json")
        response = getattr(self.client, method)(path, **kwargs)
        assert response.status_code < 500, response.content
        return response


@pytest.fixture
def world(transactional_db, stack, redis_client, settings):
    from gateway.snapshots import publish_workspace
    from tests.cast import build_cast
    from tests.gateway.conftest import add_provider_keys
    from workspaces.services.tokens import api_token_create
    from workspaces.tenancy import workspace_scope

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    sim_url, gateway = stack
    cast = build_cast("caps-")
    add_provider_keys(cast, sim_url)
    publish_workspace(cast.workspace.pk)
    apis = {}
    for role in ("admin", "member"):
        with workspace_scope(cast.workspace.pk):
            apis[role] = Api(api_token_create(member=cast.by_role(role), name=role)[1])
    httpx.post(sim_url + "/_sim/reset")
    return cast, gateway, apis


def _chat(gateway: str, key: str, model: str = "gpt-4o", agent: str | None = None):
    headers = {"Authorization": f"Bearer {key}"}
    if agent:
        headers["Alephant-Agent"] = agent
    return httpx.post(
        f"{gateway}/v1/chat/completions",
        headers=headers,
        json={"model": model, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def _mint(api: Api, **body) -> str:
    response = api("post", "/api/v1/gateway-keys/", {"name": "mine", **body})
    assert response.status_code == 201, response.content
    return response.json()["key"]


def test_admin_tightening_a_member_binds_the_key_they_minted_before(world):
    cast, gateway, apis = world
    # The member mints a key for themselves with no limits at all...
    key = _mint(apis["member"], member_id=cast.member.pk)
    assert _chat(gateway, key).status_code == 200
    # ...then an admin limits the member; the old key follows within a second.
    response = apis["admin"](
        "patch",
        f"/api/v1/members/{cast.member.pk}/limits/",
        {"allowed_models": ["gpt-4o-mini*"], "rpm": 3},
    )
    assert response.status_code == 200, response.content
    time.sleep(SNAPSHOT_WAIT_S)

    refused = _chat(gateway, key, "gpt-4o")
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["type"] == "permission_denied" and error["code"] == "model_not_allowed"
    assert "gpt-4o" in error["message"]

    listed = httpx.get(f"{gateway}/v1/models", headers={"Authorization": f"Bearer {key}"})
    ids = [m["id"] for m in listed.json()["data"]]
    assert ids and all(i.startswith("gpt-4o-mini") for i in ids), ids

    # rpm: the member's 3/min, not the workspace floor (100); one call already in the window.
    codes = [_chat(gateway, key, "gpt-4o-mini").status_code for _ in range(5)]
    assert codes == [200, 200, 429, 429, 429], codes

    # And the member cannot mint their way out.
    response = apis["member"](
        "post", "/api/v1/gateway-keys/", {"name": "escape", "member_id": cast.member.pk, "rpm": 50}
    )
    assert response.status_code == 400 and "rpm" in response.json()["error"]["fields"]


def _cross_department_agent(cast, apis):
    """The member (in Engineering) creates their own agent in another department."""
    admin, member = apis["admin"], apis["member"]
    research = admin("post", "/api/v1/departments/", {"name": "Research"}).json()
    agent = member(
        "post",
        "/api/v1/agents/",
        {"slug": "scout", "name": "Scout", "department_id": research["id"]},
    )
    assert agent.status_code == 201, agent.content
    return research["id"], agent.json()["id"]


def _exhaust(cast, department_id: int) -> int:
    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    with workspace_scope(cast.workspace.pk):
        # Smaller than any call's worst case: every call on this department is refused.
        return budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="department",
            scope_id=department_id,
            amount_usd="0.00001",
            period="month",
        ).pk


def _assert_refused_naming(response, department_id: int, budget_id: int) -> None:
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["type"] == "budget_exceeded"
    assert f"department {department_id} budget {budget_id}" in error["message"], error


def test_member_with_an_exhausted_department_cannot_spend_through_another_departments_agent(
    world,
):
    cast, gateway, apis = world
    _research, agent_id = _cross_department_agent(cast, apis)
    member_key = _mint(apis["member"], member_id=cast.member.pk)
    agent_key = _mint(apis["member"], agent_id=agent_id)
    engineering = cast.member.department_id
    budget = _exhaust(cast, engineering)
    time.sleep(SNAPSHOT_WAIT_S)

    _assert_refused_naming(_chat(gateway, member_key), engineering, budget)
    _assert_refused_naming(_chat(gateway, member_key, agent="scout"), engineering, budget)
    _assert_refused_naming(_chat(gateway, agent_key), engineering, budget)


def test_an_agent_in_another_department_charges_that_department_too(world):
    cast, gateway, apis = world
    research, agent_id = _cross_department_agent(cast, apis)
    member_key = _mint(apis["member"], member_id=cast.member.pk)
    agent_key = _mint(apis["member"], agent_id=agent_id)
    budget = _exhaust(cast, research)
    time.sleep(SNAPSHOT_WAIT_S)

    # The member's own chain (Engineering) has room: a direct call passes...
    assert _chat(gateway, member_key).status_code == 200
    # ...but through the Research agent, Research's cap holds too.
    _assert_refused_naming(_chat(gateway, member_key, agent="scout"), research, budget)
    _assert_refused_naming(_chat(gateway, agent_key), research, budget)
