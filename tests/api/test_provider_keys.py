"""Provider keys over the API: shape, bad input -> 400 with a field error, secret write-only."""

from __future__ import annotations

import pytest

from core import vault
from gateway.models import ProviderCredential
from gateway.services.datakeys import enc_for
from workspaces.tenancy import workspace_scope

URL = "/api/v1/provider-keys/"
GOOD = {"provider": "openai", "name": "prod", "secret": "sk-proj-abcdefghijklmnop-WXYZ"}


def test_create_returns_last4_only_and_stores_ciphertext(api, cast):
    response = api.call("owner", "post", URL, GOOD)
    assert response.status_code == 201
    body = response.json()
    assert {"id", "provider", "name", "last4"} <= set(body)
    assert body["last4"] == "WXYZ" and "secret" not in body
    assert GOOD["secret"] not in response.content.decode()
    listed = api.call("owner", "get", URL).content.decode()
    detail = api.call("owner", "get", f"{URL}{body['id']}/").content.decode()
    assert GOOD["secret"] not in listed + detail
    with workspace_scope(cast.workspace.pk):
        stored = ProviderCredential.objects.select_related("data_key").get(pk=body["id"])
        assert GOOD["secret"] not in stored.ciphertext
        assert vault.open_secret(cast.workspace.pk, enc_for(stored)) == GOOD["secret"]


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"provider": "skynet"}, "provider"),
        ({"name": ""}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"secret": "s" * 5000}, "secret"),
        ({"secret": ""}, "secret"),
        ({"base_url": "ftp://example.com"}, "base_url"),
        ({"base_url": "https://"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"base_url": "https://user:pw@example.com"}, "base_url"),
        ({"base_url": "https://example.com:99999"}, "base_url"),
        ({"base_url": "https://" + "a" * 600 + ".com"}, "base_url"),
        ({"provider": "openai-compatible"}, "base_url"),
        ({"provider": "azure-openai"}, "base_url"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": "soon"}, "timeout_s"),
    ],
)
def test_bad_input_is_a_field_error(api, override, field):
    response = api.call("owner", "post", URL, {**GOOD, **override})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert field in error["fields"]


def test_duplicate_name_is_a_field_error(api):
    assert api.call("owner", "post", URL, GOOD).status_code == 201
    response = api.call("admin", "post", URL, GOOD)
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434",
        "http://localhost:8000/v1",
        "http://10.0.0.5",
        "http://[::1]:80",
        "http://169.254.169.254/latest",
        "http://192.168.1.10",
        "http://0.0.0.0",
        "http://foo.localhost",
        "http://[::ffff:127.0.0.1]",
    ],
)
def test_private_upstreams_refused_unless_allowed(api, settings, url):
    settings.ALEPHANT_ALLOW_PRIVATE_UPSTREAMS = False
    body = {**GOOD, "provider": "ollama", "base_url": url}
    response = api.call("owner", "post", URL, body)
    assert response.status_code == 400
    assert "base_url" in response.json()["error"]["fields"]
    settings.ALEPHANT_ALLOW_PRIVATE_UPSTREAMS = True
    assert api.call("owner", "post", URL, body).status_code == 201


def test_public_base_url_and_generic_provider(api, settings):
    settings.ALEPHANT_ALLOW_PRIVATE_UPSTREAMS = False
    response = api.call(
        "owner",
        "post",
        URL,
        {
            **GOOD,
            "provider": "openai-compatible",
            "base_url": "https://llm.example.com/v1/",
            "api_version": "2024-10-21",
            "organization": "org-1",
            "timeout_s": 30,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["base_url"] == "https://llm.example.com/v1"
    assert (body["api_version"], body["organization"], body["timeout_s"]) == (
        "2024-10-21",
        "org-1",
        30,
    )


def test_update_replaces_secret_and_keeps_it_hidden(api, cast):
    created = api.call("owner", "post", URL, GOOD).json()
    new_secret = "sk-proj-rotated-secret-value-9876"
    response = api.call("owner", "patch", f"{URL}{created['id']}/", {"secret": new_secret})
    assert response.status_code == 200
    assert response.json()["last4"] == "9876"
    assert new_secret not in response.content.decode()
    with workspace_scope(cast.workspace.pk):
        stored = ProviderCredential.objects.select_related("data_key").get(pk=created["id"])
        assert vault.open_secret(cast.workspace.pk, enc_for(stored)) == new_secret


def test_filter_by_provider(api):
    api.call("owner", "post", URL, GOOD)
    api.call("owner", "post", URL, {**GOOD, "provider": "anthropic", "name": "claude"})
    page = api.call("owner", "get", URL + "?provider=anthropic").json()
    assert [r["name"] for r in page["results"]] == ["claude"]
    page = api.call("owner", "get", URL + "?limit=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1 and "offset=1" in page["next"]


@pytest.fixture
def fake_provider():
    """A tiny local 'provider' that accepts one bearer token on GET /v1/models."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            good = self.headers.get("Authorization") == f"Bearer {GOOD['secret']}"
            self.send_response(200 if good and self.path == "/v1/models" else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"data": []}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_test_connection_action(api, cast, fake_provider):
    good = api.call(
        "owner", "post", URL, {**GOOD, "provider": "openai-compatible", "base_url": fake_provider}
    ).json()
    bad = api.call(
        "owner",
        "post",
        URL,
        {
            **GOOD,
            "name": "bad",
            "provider": "openai-compatible",
            "secret": "sk-wrong-secret-0000",
            "base_url": fake_provider,
        },
    ).json()
    response = api.call("admin", "post", f"{URL}{good['id']}/test/")
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "status": 200,
        "message": "The provider accepted the key.",
    }
    assert GOOD["secret"] not in response.content.decode()
    rejected = api.call("owner", "post", f"{URL}{bad['id']}/test/").json()
    assert rejected["ok"] is False and rejected["status"] == 401
    assert api.call("member", "post", f"{URL}{good['id']}/test/").status_code == 403
    assert api.call("outsider", "post", f"{URL}{good['id']}/test/").status_code == 404
    actions = api.call("owner", "get", "/api/v1/audit-log/?action=provider_key.test").json()
    assert actions["count"] == 2
