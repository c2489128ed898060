"""Cross-tenant: another workspace's ids are 404 (same as missing ones) and nothing changes."""

from __future__ import annotations

import json

import pytest
from django.forms.models import model_to_dict

from gateway.models import GatewayKey, ProviderCredential, WorkspaceDataKey
from tests.api.conftest import shared_world
from workspaces.models import Agent, APIToken, AuditLog, Department, Invitation, Member
from workspaces.tenancy import workspace_scope

# One cast and world per module; each test's changes roll back (tests/api/conftest.py).
pytestmark = shared_world

MODELS = [
    Member,
    Department,
    Agent,
    Invitation,
    APIToken,
    AuditLog,
    ProviderCredential,
    WorkspaceDataKey,
    GatewayKey,
]

DETAIL = [
    ("get", "members/{member}/", None),
    ("patch", "members/{member}/", {"role": "admin"}),
    ("delete", "members/{member}/", None),
    ("get", "invitations/{invitation}/", None),
    ("post", "invitations/{invitation}/revoke/", None),
    ("get", "departments/{department}/", None),
    ("patch", "departments/{department}/", {"name": "Stolen"}),
    ("delete", "departments/{department}/", None),
    ("get", "agents/{agent}/", None),
    ("patch", "agents/{agent}/", {"name": "Stolen"}),
    ("delete", "agents/{agent}/", None),
    ("get", "audit-log/{audit}/", None),
    ("get", "api-tokens/{api_token}/", None),
    ("post", "api-tokens/{api_token}/revoke/", None),
    ("get", "provider-keys/{provider_key}/", None),
    ("patch", "provider-keys/{provider_key}/", {"name": "stolen", "secret": "sk-x-12345678"}),
    ("delete", "provider-keys/{provider_key}/", None),
    ("get", "gateway-keys/{gateway_key}/", None),
    ("patch", "gateway-keys/{gateway_key}/", {"rpm": 1}),
    ("post", "gateway-keys/{gateway_key}/revoke/", None),
]


def digest(workspace_id: int) -> str:
    with workspace_scope(workspace_id):
        return json.dumps(
            {
                m.__name__: sorted(
                    (model_to_dict(o) for o in m.objects.all()), key=lambda d: d["id"]
                )
                for m in MODELS
            },
            default=str,
            sort_keys=True,
        )


def b_ids(cast, world) -> dict[str, int]:
    with workspace_scope(cast.other_workspace.pk):
        return {
            "member": cast.outsider.pk,
            "invitation": world.b_invitation.pk,
            "department": world.b_department.pk,
            "agent": world.b_agent.pk,
            "audit": AuditLog.objects.first().pk,
            "api_token": APIToken.objects.first().pk,
            "provider_key": world.b_provider_key.pk,
            "gateway_key": world.b_gateway_key.pk,
        }


@pytest.mark.parametrize("role", ["owner", "admin"])
@pytest.mark.parametrize(("method", "path", "body"), DETAIL, ids=[f"{m} {p}" for m, p, _ in DETAIL])
def test_foreign_ids_are_404_and_change_nothing(api, cast, world, role, method, path, body):
    ids = b_ids(cast, world)
    before_b, before_a = digest(cast.other_workspace.pk), digest(cast.workspace.pk)
    foreign = api.call(role, method, "/api/v1/" + path.format(**ids), body)
    missing = api.call(
        role, method, "/api/v1/" + path.format(**dict.fromkeys(ids, 987654321)), body
    )
    assert foreign.status_code == 404, foreign.content
    assert (
        foreign.json()
        == missing.json()
        == {"error": {"type": "not_found", "message": "Not found."}}
    )
    assert digest(cast.other_workspace.pk) == before_b
    assert digest(cast.workspace.pk) == before_a


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("gateway-keys/", {"name": "x", "member_id": "outsider"}, "member_id"),
        ("gateway-keys/", {"name": "x", "agent_id": "b_agent"}, "agent_id"),
        ("agents/", {"slug": "x", "name": "x", "owner_id": "outsider"}, "owner_id"),
        ("agents/", {"slug": "x", "name": "x", "department_id": "b_department"}, "department_id"),
        (
            "invitations/",
            {"email": "x@x.example", "department_id": "b_department"},
            "department_id",
        ),
    ],
)
def test_foreign_ids_in_bodies_are_field_errors(api, cast, world, path, body, field):
    refs = {
        "outsider": cast.outsider.pk,
        "b_agent": world.b_agent.pk,
        "b_department": world.b_department.pk,
    }
    body = {k: refs.get(v, v) for k, v in body.items()}
    before_a, before_b = digest(cast.workspace.pk), digest(cast.other_workspace.pk)
    response = api.call("owner", "post", "/api/v1/" + path, body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {field: ["Not found."]}
    assert digest(cast.workspace.pk) == before_a
    assert digest(cast.other_workspace.pk) == before_b


def test_member_patch_department_from_other_workspace(api, cast, world):
    before = digest(cast.workspace.pk)
    response = api.call(
        "owner",
        "patch",
        f"/api/v1/members/{cast.member.pk}/",
        {"department_id": world.b_department.pk},
    )
    assert response.status_code == 400
    assert digest(cast.workspace.pk) == before
