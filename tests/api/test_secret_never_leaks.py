"""A provider secret, once stored, appears in no API response, log record or error."""

from __future__ import annotations

import base64
import io
import logging

import pytest
from django.test import Client

from tests.api.conftest import PROVIDER_SECRET

SECRET = "sk-LEAKCANARY-7f3a9c1e5b2d4680-Zq"


@pytest.fixture
def all_logs(caplog):
    """Everything logged at DEBUG and above, through Django's configured handlers too."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield lambda: stream.getvalue() + "\n" + caplog.text
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_secret_is_never_returned_or_logged(api, cast, world, all_logs, settings):
    settings.DEBUG = False
    bodies: list[str] = []

    def call(role, method, path, data=None):
        response = api.call(role, method, path, data)
        bodies.append(
            f"{response.status_code} {dict(response.headers)} "
            f"{response.content.decode(errors='replace')}"
        )
        return response

    created = call(
        "owner",
        "post",
        "/api/v1/provider-keys/",
        {"provider": "openai", "name": "canary", "secret": SECRET},
    ).json()
    pk = created["id"]
    # Every read and every failure path that could echo input.
    call("owner", "get", "/api/v1/provider-keys/")
    call("owner", "get", f"/api/v1/provider-keys/{pk}/")
    call("admin", "get", "/api/v1/provider-keys/?name=canary")
    call(
        "owner",
        "post",
        "/api/v1/provider-keys/",
        {"provider": "openai", "name": "canary", "secret": SECRET},
    )  # duplicate name
    call(
        "owner",
        "post",
        "/api/v1/provider-keys/",
        {"provider": SECRET, "name": "x", "secret": SECRET},
    )  # unknown provider
    call(
        "owner",
        "post",
        "/api/v1/provider-keys/",
        {"provider": "openai", "name": "y", "secret": SECRET, "base_url": "ftp://" + SECRET},
    )
    call("owner", "patch", f"/api/v1/provider-keys/{pk}/", {"secret": SECRET, "timeout_s": -1})
    call("owner", "patch", f"/api/v1/provider-keys/{pk}/", {"secret": SECRET + "-v2"})
    call(
        "member",
        "post",
        "/api/v1/provider-keys/",
        {"provider": "openai", "name": "z", "secret": SECRET},
    )  # 403
    call("outsider", "get", f"/api/v1/provider-keys/{pk}/")  # 404
    call("owner", "get", "/api/v1/audit-log/")
    call("owner", "get", "/api/schema/")
    call(
        None,
        "post",
        "/api/v1/provider-keys/",
        {"provider": "openai", "name": "q", "secret": SECRET},
    )
    Client().post(
        "/api/v1/provider-keys/",
        data="{not json " + SECRET,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {api.tokens['owner']}",
    )
    call("owner", "delete", f"/api/v1/provider-keys/{pk}/")

    haystack = "\n".join(bodies) + all_logs()
    assert "Bad Request" in haystack or "Forbidden" in haystack  # logs were captured
    for needle in (
        SECRET,
        SECRET[3:-3],
        base64.b64encode(SECRET.encode()).decode()[:24],
        PROVIDER_SECRET,
    ):
        assert needle not in haystack
