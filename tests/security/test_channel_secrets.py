"""Alert-channel credentials (Slack URLs, webhook signing keys) are sealed at rest and never echoed."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from types import SimpleNamespace

from django.apps import apps
from django.db import connection

from billing.models import AlertChannel
from billing.services.channel_secrets import channel_secrets_open
from core.logmask import SecretMaskingFilter, mask
from gateway.services.datakey_rotation import datakey_rotate
from tests.security.conftest import answer
from workspaces.models import AuditLog
from workspaces.tenancy import workspace_scope

URL = "/api/v1/alert-channels/"
SLACK_PATH = "/services/T0000SECRET/B0000SECRET/XyZsEcReTtOkEn123456"


def _rows(cast) -> str:
    with workspace_scope(cast.workspace.pk):
        channels = list(AlertChannel.objects.values())
        audit = list(AuditLog.objects.values())
    return json.dumps([channels, audit], default=str)


def test_slack_url_is_sealed_and_never_read_back(api, cast, http_server, caplog):
    server = http_server(answer(200))
    slack_url = f"{server.url}{SLACK_PATH}"
    created = api.call("admin", "post", URL, {"kind": "slack", "name": "s", "url": slack_url})
    assert created.status_code == 201, created.content
    channel_id = created.json()["id"]
    reads = [
        api.call("admin", "get", URL).content,
        api.call("finance", "get", f"{URL}{channel_id}/").content,
        api.call("owner", "get", "/api/v1/audit-log/").content,
    ]
    for body in reads:
        assert SLACK_PATH not in body.decode()
    assert SLACK_PATH not in _rows(cast)
    with caplog.at_level(logging.DEBUG):
        tested = api.call("admin", "post", f"{URL}{channel_id}/test/").json()
    assert tested["ok"] is True, tested
    assert server.requests[0][0] == SLACK_PATH  # delivered to the real, sealed URL
    assert all(SLACK_PATH not in r.getMessage() for r in caplog.records)


def test_webhook_secret_is_shown_once_and_signs_deliveries(api, cast, http_server):
    server = http_server(answer(200))
    created = api.call("admin", "post", URL, {"kind": "webhook", "name": "w", "url": server.url})
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    channel_id = created.json()["id"]
    for body in [
        api.call("admin", "get", URL).content,
        api.call("admin", "get", f"{URL}{channel_id}/").content,
        api.call("owner", "get", "/api/v1/audit-log/").content,
    ]:
        assert secret not in body.decode()
    assert secret not in _rows(cast)
    with workspace_scope(cast.workspace.pk):
        datakey_rotate(workspace=cast.workspace)  # sealed secrets follow a data-key rotation
    tested = api.call("admin", "post", f"{URL}{channel_id}/test/").json()
    assert tested["ok"] is True, tested
    _, headers, body = server.requests[0]
    stamp = headers["Alephant-Signature"].split(",")[0].removeprefix("t=")
    expected = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    assert headers["Alephant-Signature"] == f"t={stamp},v1={expected.hexdigest()}"


def test_member_and_stranger_cannot_read_channels(api, cast):
    created = api.call(
        "admin", "post", URL, {"kind": "webhook", "name": "w", "url": "http://x.example"}
    )
    path = f"{URL}{created.json()['id']}/"
    assert api.call("member", "get", path).status_code == 403
    assert api.call("outsider", "get", path).status_code == 404


def test_migration_seals_existing_plaintext_rows(cast):
    migration = __import__(
        "billing.migrations.0006_alert_channel_sealed_secrets", fromlist=["seal"]
    )
    slack = f"https://hooks.slack.com{SLACK_PATH}"
    with workspace_scope(cast.workspace.pk):
        old_slack = AlertChannel.objects.create(
            workspace=cast.workspace, kind="slack", name="old-s", url=slack
        )
        old_hook = AlertChannel.objects.create(
            workspace=cast.workspace,
            kind="webhook",
            name="old-w",
            url="https://x.example/h",
            secret="legacy-plaintext-signing-key",
        )
    migration.seal(apps, SimpleNamespace(connection=connection))
    assert "legacy-plaintext-signing-key" not in _rows(cast) and SLACK_PATH not in _rows(cast)
    with workspace_scope(cast.workspace.pk):
        s = AlertChannel.objects.get(pk=old_slack.pk)
        w = AlertChannel.objects.get(pk=old_hook.pk)
        assert channel_secrets_open(channel=s).url == slack
        assert s.url.startswith("https://hooks.slack.com/") and SLACK_PATH not in s.url
        assert channel_secrets_open(channel=w).secret == "legacy-plaintext-signing-key"
        assert channel_secrets_open(channel=w).url == "https://x.example/h"


def test_log_filter_masks_credentials():
    line = f"POST https://hooks.slack.com{SLACK_PATH} key whsec_abcdefghijklmnop"
    assert SLACK_PATH not in mask(line) and "abcdefghijklmnop" not in mask(line)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent to %s", (line,), None)
    SecretMaskingFilter().filter(record)
    assert SLACK_PATH not in record.getMessage()
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
