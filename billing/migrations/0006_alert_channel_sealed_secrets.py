"""Seal alert-channel credentials: webhook signing keys and Slack webhook URLs move into the vault.

Existing rows are encrypted under each workspace's active data key (created if the workspace has
none yet); the plaintext `secret` is blanked and a Slack `url` keeps only a masked hint. Needs the
master key (ALEPHANT_MASTER_KEY / _FILE) only when such rows exist.
"""

import json
from urllib.parse import urlsplit

import django.db.models.deletion
from django.db import migrations, models

from core import vault


def _mask(url):
    # Same rule as billing.services.channel_secrets.mask_url (migrations keep their own copy).
    parts = urlsplit(url)
    tail = url[-4:] if len(url) >= 24 else ""
    return f"{parts.scheme}://{parts.hostname or ''}/…{tail}"


def _scoped(schema_editor, workspace_id):
    # Row-level security is forced even for the owner role: act inside each workspace.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.workspace_id', %s, true)", [str(workspace_id)])


def _workspace_ids(schema_editor):
    # Workspaces are row-level secured too: list them through the narrow, named system function.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT * FROM alephant_workspace_ids()")
        return [row[0] for row in cursor.fetchall()]


def seal(apps, schema_editor):
    AlertChannel = apps.get_model("billing", "AlertChannel")
    DataKey = apps.get_model("gateway", "WorkspaceDataKey")
    for workspace_id in _workspace_ids(schema_editor):
        _scoped(schema_editor, workspace_id)
        channels = list(
            AlertChannel.objects.filter(
                workspace_id=workspace_id, sealed="", kind__in=["slack", "webhook"]
            )
        )
        if not channels:
            continue
        key = DataKey.objects.filter(workspace_id=workspace_id, active=True).first()
        if key is None:
            wrapped, key_version = vault.wrap_data_key(workspace_id, vault.new_data_key())
            key = DataKey.objects.create(
                workspace_id=workspace_id, version=1, wrapped_dek=wrapped, key_version=key_version
            )
        dek = vault.unwrap_data_key(workspace_id, key.wrapped_dek, key.key_version)
        for channel in channels:
            url = channel.url if channel.kind == "slack" else ""
            payload = json.dumps({"url": url, "secret": channel.secret})
            channel.sealed_nonce, channel.sealed = vault.encrypt_with_dek(
                workspace_id, dek, payload
            )
            channel.data_key_id = key.pk
            channel.secret = ""
            if channel.kind == "slack":
                channel.url = _mask(url)
            channel.save(update_fields=["sealed_nonce", "sealed", "data_key", "secret", "url"])
    _scoped(schema_editor, "")


def unseal(apps, schema_editor):
    AlertChannel = apps.get_model("billing", "AlertChannel")
    for workspace_id in _workspace_ids(schema_editor):
        _scoped(schema_editor, workspace_id)
        for channel in AlertChannel.objects.filter(workspace_id=workspace_id).exclude(sealed=""):
            key = channel.data_key
            dek = vault.unwrap_data_key(workspace_id, key.wrapped_dek, key.key_version)
            data = json.loads(
                vault.decrypt_with_dek(workspace_id, dek, channel.sealed_nonce, channel.sealed)
            )
            channel.secret = data.get("secret", "")
            if channel.kind == "slack":
                channel.url = data.get("url", channel.url)
            channel.sealed_nonce = channel.sealed = ""
            channel.data_key_id = None
            channel.save(update_fields=["sealed_nonce", "sealed", "data_key", "secret", "url"])
    _scoped(schema_editor, "")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_budget_rpm_metric"),
        ("gateway", "0001_keys"),
        ("workspaces", "0002_system"),
    ]

    operations = [
        migrations.AddField(
            model_name="alertchannel",
            name="data_key",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="gateway.workspacedatakey",
            ),
        ),
        migrations.AddField(
            model_name="alertchannel",
            name="sealed",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AddField(
            model_name="alertchannel",
            name="sealed_nonce",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.RunPython(seal, unseal),
    ]
