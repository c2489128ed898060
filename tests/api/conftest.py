"""REST API test helpers: a token per cast member and a small client that speaks JSON.

`cast`, `api` and `world` are built per test, or once per module for modules that use
`shared_world` (`pytestmark = shared_world`): read-mostly matrices of hundreds of requests,
where each test's writes roll back to a savepoint and each test gets its own copies.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import pytest
from django.test import Client

from gateway.services.keys import gateway_key_create, provider_key_create
from tests.cast import Cast, build_cast
from workspaces.services.directory import invitation_send
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

ROLES = ["owner", "admin", "finance", "member", "outsider"]
PROVIDER_SECRET = "sk-live-PLAINTEXT-SECRET-a1b2c3d4e5f6"


@dataclass
class Api:
    tokens: dict[str, str]
    client: Client = field(default_factory=Client)

    def call(self, role: str | None, method: str, path: str, data=None, **headers):
        if role is not None:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {self.tokens[role]}"
        kwargs = {}
        if data is not None:
            kwargs = {"data": json.dumps(data), "content_type": "application/json"}
        return getattr(self.client, method)(path, **kwargs, **headers)


def _tokens(cast: Cast) -> dict[str, str]:
    tokens = {}
    for role in ROLES:
        member = cast.by_role(role)
        with workspace_scope(member.workspace_id):
            _, tokens[role] = api_token_create(member=member, name=f"{role} token")
    return tokens


@pytest.fixture(scope="module")
def _module_world(module_transaction, django_db_blocker):
    with django_db_blocker.unblock():
        cast = build_cast()
        tokens = _tokens(cast)
        return cast, tokens, _build_world(cast)


# The module's rows, made before any test's own transaction opens (hence the module scope).
shared_world = pytest.mark.usefixtures("_module_world")


_COPY = pytest.StashKey[tuple]()


def _shared(request):
    """This test's copy of the module's (cast, tokens, world), or None when built per test."""
    if "_module_world" not in request.fixturenames:
        return None
    if _COPY not in request.node.stash:
        request.getfixturevalue("redis_client")  # rate-limit windows and caches start empty
        request.node.stash[_COPY] = copy.deepcopy(request.getfixturevalue("_module_world"))
    return request.node.stash[_COPY]


@pytest.fixture
def cast(request, db) -> Cast:
    shared = _shared(request)
    return shared[0] if shared else build_cast()


@pytest.fixture
def api(request, cast) -> Api:
    shared = _shared(request)
    return Api(shared[1] if shared else _tokens(cast))


@dataclass
class World:
    """One of everything in workspace A, and in workspace B."""

    department: object
    agent: object
    invitation: object
    provider_key: object
    gateway_key: object
    api_token: object
    b_department: object
    b_agent: object
    b_provider_key: object
    b_gateway_key: object
    b_invitation: object


@pytest.fixture
def world(request, cast, api) -> World:
    shared = _shared(request)
    return shared[2] if shared else _build_world(cast)


def _build_world(cast: Cast) -> World:
    from workspaces.models import APIToken, Department

    ws, wb = cast.workspace, cast.other_workspace
    with workspace_scope(ws.pk):
        department = Department.objects.get(workspace=ws, name="Engineering")
        agent = agent_create(workspace=ws, slug="helper", name="Helper", owner=cast.member)
        invitation = invitation_send(
            workspace=ws, actor=cast.owner, email="new@a.example", role="member"
        ).invitation
        provider_key = provider_key_create(
            workspace=ws,
            actor=cast.owner,
            provider="openai",
            name="main",
            secret=PROVIDER_SECRET,
        )
        gateway_key, _ = gateway_key_create(
            workspace=ws, actor=cast.member, name="laptop", member=cast.member
        )
        api_token = APIToken.objects.filter(member=cast.member).first()
    with workspace_scope(wb.pk):
        from workspaces.services.workspaces import department_create

        b_department = department_create(workspace=wb, name="B dept")
        b_agent = agent_create(workspace=wb, slug="b-bot", name="B bot", owner=cast.outsider)
        b_invitation = invitation_send(
            workspace=wb, actor=cast.outsider, email="new@b.example", role="member"
        ).invitation
        b_provider_key = provider_key_create(
            workspace=wb,
            actor=cast.outsider,
            provider="anthropic",
            name="b-main",
            secret="sk-ant-B-SECRET-zzzzzzzzzzzz",
        )
        b_gateway_key, _ = gateway_key_create(
            workspace=wb, actor=cast.outsider, name="b-key", member=cast.outsider
        )
    return World(
        department,
        agent,
        invitation,
        provider_key,
        gateway_key,
        api_token,
        b_department,
        b_agent,
        b_provider_key,
        b_gateway_key,
        b_invitation,
    )
