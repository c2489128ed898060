"""OpenAPI schema and docs, served offline from local static files."""

from __future__ import annotations

import re

from django.test import Client


def test_schema_lists_every_resource(db):
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for resource in (
        "members",
        "invitations",
        "departments",
        "agents",
        "provider-keys",
        "gateway-keys",
        "audit-log",
        "api-tokens",
    ):
        assert f"/api/v1/{resource}/" in paths
    create = paths["/api/v1/gateway-keys/"]["post"]
    ref = create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert "key" in schema["components"]["schemas"][ref.split("/")[-1]]["properties"]
    pk_in = schema["components"]["schemas"]["ProviderKeyCreateIn"]["properties"]
    assert {"provider", "name", "secret", "base_url"} <= set(pk_in)
    assert "apiToken" in schema["components"]["securitySchemes"]


def test_docs_load_their_assets_from_local_static(db):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
    assert assets, html[:500]
    for url in assets:
        assert url.startswith("/static/"), url
        asset = Client().get(url)
        assert asset.status_code == 200, url
        b"".join(asset.streaming_content) if asset.streaming else asset.content
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
