"""Every endpoint x every role (owner/admin/finance/member of A, outsider = owner of B).

The outsider's token belongs to workspace B: lists answer B's data, A's ids are 404.
"""

from __future__ import annotations

import pytest

from tests.api.conftest import ROLES, shared_world
from workspaces.models import AuditLog
from workspaces.tenancy import workspace_scope

# One cast and world per module; each test's changes roll back (tests/api/conftest.py).
pytestmark = shared_world

O, A, F, M, X = ROLES  # noqa: E741  # owner, admin, finance, member, outsider

# (method, path template, body, {role: status})
CASES = [
    ("get", "/api/v1/members/", None, dict.fromkeys(ROLES, 200)),
    ("get", "/api/v1/members/{member}/", None, {O: 200, A: 200, F: 200, M: 200, X: 404}),
    (
        "patch",
        "/api/v1/members/{member}/",
        {"role": "finance"},
        {O: 200, A: 200, F: 403, M: 403, X: 404},
    ),
    ("delete", "/api/v1/members/{finance}/", None, {O: 204, A: 204, F: 403, M: 403, X: 404}),
    ("get", "/api/v1/invitations/", None, {O: 200, A: 200, F: 403, M: 403, X: 200}),
    (
        "post",
        "/api/v1/invitations/",
        {"email": "fresh@c.example", "role": "member"},
        {O: 201, A: 201, F: 403, M: 403, X: 201},
    ),
    ("get", "/api/v1/invitations/{invitation}/", None, {O: 200, A: 200, F: 403, M: 403, X: 404}),
    (
        "post",
        "/api/v1/invitations/{invitation}/revoke/",
        None,
        {O: 200, A: 200, F: 403, M: 403, X: 404},
    ),
    ("get", "/api/v1/departments/", None, dict.fromkeys(ROLES, 200)),
    ("post", "/api/v1/departments/", {"name": "Ops"}, {O: 201, A: 201, F: 403, M: 403, X: 201}),
    ("get", "/api/v1/departments/{department}/", None, {O: 200, A: 200, F: 200, M: 200, X: 404}),
    (
        "patch",
        "/api/v1/departments/{department}/",
        {"name": "Eng 2"},
        {O: 200, A: 200, F: 403, M: 403, X: 404},
    ),
    ("delete", "/api/v1/departments/{department}/", None, {O: 204, A: 204, F: 403, M: 403, X: 404}),
    ("get", "/api/v1/agents/", None, dict.fromkeys(ROLES, 200)),
    ("post", "/api/v1/agents/", {"slug": "new-bot", "name": "New bot"}, dict.fromkeys(ROLES, 201)),
    ("get", "/api/v1/agents/{agent}/", None, {O: 200, A: 200, F: 200, M: 200, X: 404}),
    (
        "patch",
        "/api/v1/agents/{agent}/",
        {"name": "Renamed"},
        {O: 200, A: 200, F: 403, M: 200, X: 404},
    ),
    ("delete", "/api/v1/agents/{agent}/", None, {O: 204, A: 204, F: 403, M: 204, X: 404}),
    ("get", "/api/v1/audit-log/", None, {O: 200, A: 200, F: 403, M: 403, X: 200}),
    ("get", "/api/v1/audit-log/{audit}/", None, {O: 200, A: 200, F: 403, M: 403, X: 404}),
    ("get", "/api/v1/api-tokens/", None, dict.fromkeys(ROLES, 200)),
    ("post", "/api/v1/api-tokens/", {"name": "ci", "scope": "read"}, dict.fromkeys(ROLES, 201)),
    ("get", "/api/v1/api-tokens/{api_token}/", None, {O: 200, A: 200, F: 404, M: 200, X: 404}),
    (
        "post",
        "/api/v1/api-tokens/{api_token}/revoke/",
        None,
        {O: 200, A: 200, F: 404, M: 200, X: 404},
    ),
    ("get", "/api/v1/provider-keys/", None, {O: 200, A: 200, F: 403, M: 403, X: 200}),
    (
        "post",
        "/api/v1/provider-keys/",
        {"provider": "openai", "name": "new", "secret": "sk-new-secret-value-1234"},
        {O: 201, A: 201, F: 403, M: 403, X: 201},
    ),
    (
        "get",
        "/api/v1/provider-keys/{provider_key}/",
        None,
        {O: 200, A: 200, F: 403, M: 403, X: 404},
    ),
    (
        "patch",
        "/api/v1/provider-keys/{provider_key}/",
        {"name": "renamed"},
        {O: 200, A: 200, F: 403, M: 403, X: 404},
    ),
    (
        "delete",
        "/api/v1/provider-keys/{provider_key}/",
        None,
        {O: 204, A: 204, F: 403, M: 403, X: 404},
    ),
    ("get", "/api/v1/gateway-keys/", None, dict.fromkeys(ROLES, 200)),
    (
        "post",
        "/api/v1/gateway-keys/",
        {"name": "k", "member_id": "{member}"},
        {O: 201, A: 201, F: 403, M: 201, X: 400},
    ),
    ("get", "/api/v1/gateway-keys/{gateway_key}/", None, {O: 200, A: 200, F: 404, M: 200, X: 404}),
    (
        "patch",
        "/api/v1/gateway-keys/{gateway_key}/",
        {"rpm": 10},
        {O: 200, A: 200, F: 404, M: 200, X: 404},
    ),
    (
        "post",
        "/api/v1/gateway-keys/{gateway_key}/revoke/",
        None,
        {O: 200, A: 200, F: 404, M: 200, X: 404},
    ),
]


def ids_for(cast, world) -> dict[str, int]:
    with workspace_scope(cast.workspace.pk):
        audit = AuditLog.objects.filter(workspace=cast.workspace).first()
    return {
        "member": cast.member.pk,
        "finance": cast.finance.pk,
        "invitation": world.invitation.pk,
        "department": world.department.pk,
        "agent": world.agent.pk,
        "audit": audit.pk,
        "api_token": world.api_token.pk,
        "provider_key": world.provider_key.pk,
        "gateway_key": world.gateway_key.pk,
    }


def _fill(body, ids):
    if body is None:
        return None
    return {
        k: (int(v.format(**ids)) if isinstance(v, str) and v.startswith("{") else v)
        for k, v in body.items()
    }


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_role_matrix(api, cast, world, role, method, path, body, expected):
    ids = ids_for(cast, world)
    response = api.call(role, method, path.format(**ids), _fill(body, ids))
    assert response.status_code == expected[role], response.content
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["type"] and error["message"]
    if method == "get" and "{" not in path and response.status_code == 200:
        page = response.json()
        assert set(page) == {"count", "next", "previous", "results"}
        assert page["count"] == len(page["results"])  # small sets: one page
        if role == X:  # the outsider's lists show only workspace B
            resource = path.split("/")[3]
            assert not {r["id"] for r in page["results"]} & a_ids(cast, world, resource)


def a_ids(cast, world, resource: str) -> set[int]:
    from workspaces.models import APIToken

    with workspace_scope(cast.workspace.pk):
        return {
            "members": {cast.owner.pk, cast.admin.pk, cast.finance.pk, cast.member.pk},
            "invitations": {world.invitation.pk},
            "departments": {world.department.pk},
            "agents": {world.agent.pk},
            "audit-log": set(AuditLog.objects.values_list("pk", flat=True)),
            "api-tokens": set(APIToken.objects.values_list("pk", flat=True)),
            "provider-keys": {world.provider_key.pk},
            "gateway-keys": {world.gateway_key.pk},
        }[resource]


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_unauthenticated_is_401(api, cast, world, method, path, body, expected):
    ids = ids_for(cast, world)
    response = api.call(None, method, path.format(**ids), _fill(body, ids))
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
