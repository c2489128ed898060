"""Member limits set by an admin: the REST API and page, mint-time checks acting as the member,
and the effective limits every key snapshot carries (keys minted before a change included)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from gateway.snapshots import build_key_snapshot, key_redis_key
from tests.api.conftest import Api
from workspaces.models import AuditLog, MemberLimits
from workspaces.services.limits import member_limits_set
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db

LIMITS = "/api/v1/members/{}/limits/"
KEYS = "/api/v1/gateway-keys/"


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _limits_row(cast, member):
    with workspace_scope(member.workspace_id):
        return MemberLimits.objects.filter(member=member).first()


def _snapshot(cast, key_hash):
    return build_key_snapshot(key_hash)


def _mint(api: Api, role: str, **body):
    body.setdefault("name", "mine")
    return api.call(role, "post", KEYS, body)


def _key_hash(cast, key_id):
    from gateway.models import GatewayKey

    with workspace_scope(cast.workspace.pk):
        return GatewayKey.objects.get(pk=key_id).key_hash


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_managers_set_and_read_a_members_limits(cast, api, role):
    body = {
        "allowed_models": ["gpt-4o-mini*"],
        "rpm": 5,
        "tpm": 1000,
        "key_lifetime_days": 30,
        "keys_expire_at": "2030-01-01T00:00:00Z",
    }
    response = api.call(role, "patch", LIMITS.format(cast.member.pk), body)
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["allowed_models"] == ["gpt-4o-mini*"] and data["rpm"] == 5
    assert data["tpm"] == 1000 and data["key_lifetime_days"] == 30
    assert data["member_id"] == cast.member.pk
    # partial: clearing one limit leaves the others
    response = api.call(role, "patch", LIMITS.format(cast.member.pk), {"tpm": None})
    assert response.json()["tpm"] is None and response.json()["rpm"] == 5
    assert api.call("member", "get", LIMITS.format(cast.member.pk)).json()["rpm"] == 5
    with workspace_scope(cast.workspace.pk):
        assert AuditLog.objects.filter(action="member.limits", target_id=str(cast.member.pk))


@pytest.mark.parametrize("role", ["member", "finance"])
def test_a_member_cannot_lift_limits_their_own_or_anyones(cast, api, role):
    api.call("admin", "patch", LIMITS.format(cast.member.pk), {"rpm": 5})
    response = api.call(role, "patch", LIMITS.format(cast.member.pk), {"rpm": None})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "permission_denied"
    assert _limits_row(cast, cast.member).rpm == 5


def test_a_member_reads_only_their_own_limits(cast, api):
    assert api.call("member", "get", LIMITS.format(cast.member.pk)).status_code == 200
    assert api.call("member", "get", LIMITS.format(cast.admin.pk)).status_code == 404


def test_limits_validation_names_the_field(cast, api):
    response = api.call("admin", "patch", LIMITS.format(cast.member.pk), {"rpm": 0})
    assert response.status_code == 400
    assert "rpm" in response.json()["error"]["fields"]
    response = api.call("admin", "patch", LIMITS.format(cast.member.pk), {"allowed_models": "x"})
    assert response.status_code == 400 and "allowed_models" in response.json()["error"]["fields"]
    assert _limits_row(cast, cast.member) is None


def test_cross_tenant_limits_are_404_and_nothing_changes(cast, api):
    # B's owner cannot read or set A's member; A's admin cannot touch B's member.
    for method, body in (("get", None), ("patch", {"rpm": 1})):
        assert api.call("outsider", method, LIMITS.format(cast.member.pk), body).status_code == 404
        assert api.call("admin", method, LIMITS.format(cast.outsider.pk), body).status_code == 404
    assert _limits_row(cast, cast.member) is None
    assert _limits_row(cast, cast.outsider) is None


# --- mint-time checks, acting as the member ----------------------------------------------------


def test_member_mints_a_key_beyond_their_limits_gets_400_naming_the_field(cast, api):
    api.call(
        "admin",
        "patch",
        LIMITS.format(cast.member.pk),
        {"allowed_models": ["gpt-4o-mini*"], "rpm": 10, "tpm": 5000, "key_lifetime_days": 7},
    )
    far = (timezone.now() + dt.timedelta(days=30)).isoformat()
    for body, field in (
        ({"rpm": 1000}, "rpm"),
        ({"tpm": 100000}, "tpm"),
        ({"allowed_models": ["gpt-4o"]}, "allowed_models"),
        ({"allowed_models": ["*"]}, "allowed_models"),
        ({"expires_at": far}, "expires_at"),
    ):
        response = _mint(api, "member", member_id=cast.member.pk, **body)
        assert response.status_code == 400, (body, response.content)
        error = response.json()["error"]
        assert error["type"] == "validation_error" and field in error["fields"], error
    # An admin minting for the member is bound the same way.
    response = _mint(api, "admin", member_id=cast.member.pk, rpm=1000)
    assert response.status_code == 400 and "rpm" in response.json()["error"]["fields"]
    # Within the limits: fine, and an unset expiry becomes the member's latest one.
    response = _mint(
        api, "member", member_id=cast.member.pk, rpm=5, allowed_models=["gpt-4o-mini-2024*"]
    )
    assert response.status_code == 201, response.content
    expires = dt.datetime.fromisoformat(response.json()["expires_at"])
    assert timezone.now() + dt.timedelta(days=6) < expires <= timezone.now() + dt.timedelta(days=7)


def test_member_cannot_widen_their_own_key_past_their_limits(cast, api):
    created = _mint(api, "member", member_id=cast.member.pk, rpm=5)
    api.call("admin", "patch", LIMITS.format(cast.member.pk), {"rpm": 10})
    response = api.call("member", "patch", f"{KEYS}{created.json()['id']}/", {"rpm": 50})
    assert response.status_code == 400 and "rpm" in response.json()["error"]["fields"]
    response = api.call("member", "patch", f"{KEYS}{created.json()['id']}/", {"name": "renamed"})
    assert response.status_code == 200


def test_member_agent_keys_are_bound_by_the_owners_limits(cast, api):
    api.call("admin", "patch", LIMITS.format(cast.member.pk), {"rpm": 10})
    agent = api.call("member", "post", "/api/v1/agents/", {"slug": "bot", "name": "Bot"}).json()
    response = _mint(api, "member", agent_id=agent["id"], rpm=11)
    assert response.status_code == 400 and "rpm" in response.json()["error"]["fields"]


# --- call-time: the snapshot carries the effective limits -------------------------------------


def test_tightening_a_member_binds_keys_minted_before(cast, api):
    created = _mint(
        api, "member", member_id=cast.member.pk, rpm=500, tpm=90000, allowed_models=["gpt-4o*"]
    )
    assert created.status_code == 201
    key_hash = _key_hash(cast, created.json()["id"])
    before = _snapshot(cast, key_hash)
    assert before["rpm"] == 500 and before["model_allowlists"] == [["gpt-4o*"]]
    assert before["expires_at"] is None

    until = timezone.now() + dt.timedelta(days=2)
    api.call(
        "admin",
        "patch",
        LIMITS.format(cast.member.pk),
        {
            "allowed_models": ["gpt-4o-mini"],
            "rpm": 3,
            "tpm": 100000,
            "key_lifetime_days": 365,
            "keys_expire_at": until.isoformat(),
        },
    )
    after = _snapshot(cast, key_hash)
    assert after["rpm"] == 3  # the member's, smaller
    assert after["tpm"] == 90000  # the key's, smaller
    assert after["model_allowlists"] == [["gpt-4o*"], ["gpt-4o-mini"]]
    assert after["expires_at"] == int(until.timestamp())  # the earliest


def test_limit_changes_republish_the_members_keys_on_commit(
    cast, api, redis_client, django_capture_on_commit_callbacks
):
    created = _mint(api, "member", member_id=cast.member.pk)
    key_hash = _key_hash(cast, created.json()["id"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with workspace_scope(cast.workspace.pk):
            member_limits_set(member=cast.member, actor=cast.admin, rpm=2)
    assert callbacks, "no snapshot republished on commit"
    raw = redis_client.get(key_redis_key(key_hash))
    assert raw is not None and b'"rpm":2' in raw


# --- the member admin page ----------------------------------------------------------------------


def _login(client, member):
    from tests.cast import PASSWORD

    assert client.login(email=member.user.email, password=PASSWORD)


def test_admin_sets_limits_on_the_members_page(cast, client):
    _login(client, cast.admin)
    page = client.get("/members/")
    assert page.status_code == 200 and b"Save limits" in page.content
    response = client.post(
        f"/members/{cast.member.pk}/limits/",
        {
            f"l{cast.member.pk}-allowed_models": "gpt-4o-mini*, claude-3-5-haiku*",
            f"l{cast.member.pk}-rpm": "7",
            f"l{cast.member.pk}-tpm": "",
            f"l{cast.member.pk}-key_lifetime_days": "30",
            f"l{cast.member.pk}-keys_expire_at": "",
        },
    )
    assert response.status_code == 302
    row = _limits_row(cast, cast.member)
    assert row.allowed_models == ["gpt-4o-mini*", "claude-3-5-haiku*"] and row.rpm == 7
    assert row.tpm is None and row.key_lifetime_days == 30
    page = client.get("/members/")
    assert b"7 rpm" in page.content


def test_a_member_cannot_set_limits_on_the_page(cast, client):
    _login(client, cast.member)
    assert b"Save limits" not in client.get("/members/").content
    response = client.post(
        f"/members/{cast.member.pk}/limits/", {f"l{cast.member.pk}-rpm": "100000"}
    )
    assert response.status_code in (403, 404)
    assert _limits_row(cast, cast.member) is None
