"""What sends mail or probes the network is rate-limited per workspace and per user."""

from __future__ import annotations

import pytest

from tests.cast import PASSWORD
from workspaces.models import Invitation
from workspaces.tenancy import workspace_scope

SMALL = {"workspace": (4, 3600), "user": (2, 3600)}


@pytest.fixture(autouse=True)
def _small_limits(settings, redis_client):
    settings.ALEPHANT_THROTTLES = {"invitation": SMALL, "alert_test": SMALL, "provider_test": SMALL}


def _invite(api, role, n):
    body = {"email": f"victim{n}-{role}@elsewhere.example", "role": "member"}
    return api.call(role, "post", "/api/v1/invitations/", body)


def test_invitations_stop_with_429_and_retry_after(api, cast):
    assert [_invite(api, "admin", n).status_code for n in range(2)] == [201, 201]
    refused = _invite(api, "admin", 2)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 3600
    # Another user of the same workspace has their own allowance, up to the workspace's.
    assert [_invite(api, "owner", n).status_code for n in range(3)] == [201, 201, 429]
    with workspace_scope(cast.workspace.pk):
        assert Invitation.objects.filter(workspace=cast.workspace).count() == 4


def test_the_workspace_limit_binds_every_user(api, cast, settings):
    settings.ALEPHANT_THROTTLES = {"invitation": {"workspace": (2, 3600), "user": (9, 3600)}}
    assert [_invite(api, "admin", n).status_code for n in range(2)] == [201, 201]
    assert _invite(api, "owner", 9).status_code == 429
    # A stranger's own workspace is not affected.
    assert _invite(api, "outsider", 0).status_code == 201


def test_test_connection_is_throttled(api, world):
    path = f"/api/v1/provider-keys/{world.provider_key.pk}/test/"
    statuses = [api.call("admin", "post", path).status_code for _ in range(3)]
    assert statuses[:2] == [200, 200] and statuses[2] == 429


def test_test_alert_is_throttled_on_the_page_as_a_form_error(client, cast, api):
    created = api.call(
        "admin", "post", "/api/v1/alert-channels/", {"kind": "email", "name": "mail"}
    ).json()
    client.login(email=cast.admin.user.email, password=PASSWORD)
    for _ in range(2):
        client.post(f"/manage/channels/{created['id']}/test/")
    page = client.post(f"/manage/channels/{created['id']}/test/", follow=True)
    assert page.status_code == 200
    assert "Too many attempts" in page.content.decode()
    api_answer = api.call("admin", "post", f"/api/v1/alert-channels/{created['id']}/test/")
    assert api_answer.status_code == 429 and "Retry-After" in api_answer
