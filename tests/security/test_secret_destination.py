"""An admin cannot redirect a stored provider secret to their own host without knowing it."""

from __future__ import annotations

from tests.api.conftest import PROVIDER_SECRET

URL = "/api/v1/provider-keys/"


def test_patching_only_the_base_url_is_refused(api, world):
    path = f"{URL}{world.provider_key.pk}/"
    response = api.call("admin", "patch", path, {"base_url": "https://collector.attacker.example"})
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "base_url" in fields and "secret" in fields
    assert api.call("owner", "get", path).json()["base_url"] == ""
    log = api.call("owner", "get", "/api/v1/audit-log/?action=provider_key.update").json()
    assert log["results"] == []


def test_changing_the_base_url_with_the_secret_is_allowed_and_audited(api, world):
    path = f"{URL}{world.provider_key.pk}/"
    body = {"base_url": "https://eu.api.openai.com/v1", "secret": "sk-new-secret-typed-again"}
    response = api.call("admin", "patch", path, body)
    assert response.status_code == 200, response.content
    assert response.json()["base_url"] == "https://eu.api.openai.com/v1"
    log = api.call("owner", "get", "/api/v1/audit-log/?action=provider_key.update").json()
    (entry,) = log["results"]
    assert (entry["before"]["base_url"], entry["after"]["base_url"]) == (
        "",
        "https://eu.api.openai.com/v1",
    )
    assert entry["after"]["secret"] == "(replaced)"
    assert "sk-new-secret-typed-again" not in str(entry) and PROVIDER_SECRET not in str(entry)


def test_unchanged_base_url_and_other_fields_need_no_secret(api, world):
    path = f"{URL}{world.provider_key.pk}/"
    assert api.call("admin", "patch", path, {"name": "renamed", "base_url": ""}).status_code == 200
    assert api.call("admin", "patch", path, {"timeout_s": 30}).status_code == 200


def test_member_and_stranger_cannot_patch(api, world):
    path = f"{URL}{world.provider_key.pk}/"
    body = {"base_url": "https://collector.attacker.example", "secret": "x"}
    assert api.call("member", "patch", path, body).status_code == 403
    assert api.call("outsider", "patch", path, body).status_code == 404
