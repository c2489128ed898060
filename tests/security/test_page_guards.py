"""Pages refuse what the API refuses: finance reads spend, not the provider keys."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.security.conftest import PROVIDER_SECRET

PROVIDER_PAGES = ["/manage/provider-keys/", "/manage/provider-keys/?export=provider-keys"]


def _listed(world) -> bytes:
    return f"<code>…{world.provider_key.last4}</code>".encode()


def _as(cast, role: str) -> Client:
    client = Client()
    client.force_login(cast.by_role(role).user)
    return client


@pytest.mark.parametrize("role", ["finance", "member"])
def test_roles_the_api_refuses_cannot_open_the_provider_key_pages(api, world, cast, role):
    assert api.call(role, "get", "/api/v1/provider-keys/").status_code == 403
    client = _as(cast, role)
    for url in PROVIDER_PAGES:
        response = client.get(url)
        assert response.status_code == 403, url
        assert _listed(world) not in response.content
    key = world.provider_key.pk
    for action in ("test", "rotate", "delete"):
        response = client.post(f"/manage/provider-keys/{key}/{action}/", {"secret": "sk-x" * 5})
        assert response.status_code == 403, action
    assert b"/manage/provider-keys/" not in client.get("/manage/").content


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_managers_open_them_and_never_see_the_secret(api, world, cast, role):
    assert api.call(role, "get", "/api/v1/provider-keys/").status_code == 200
    page = _as(cast, role).get("/manage/provider-keys/")
    assert page.status_code == 200 and _listed(world) in page.content
    assert PROVIDER_SECRET.encode() not in page.content
