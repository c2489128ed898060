"""Alert-channel credentials at rest: a webhook's signing key and a Slack webhook URL.

A Slack incoming-webhook URL is a credential (whoever has it can post to the channel), so it is
sealed like a provider key: AES-GCM under the workspace's data key (core/vault.py), the data key
wrapped by the master key. The `url` column keeps only a masked hint for Slack; a generic webhook
keeps its URL in clear (it is where we send, not a key) and seals its signing secret. Both are
shown once, in the create answer, and never again: not in API reads, the audit log or logs.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from billing.models import AlertChannel
from billing.models.alerts import ChannelKind
from core import vault
from gateway.models import WorkspaceDataKey
from gateway.services.datakeys import datakey_active


@dataclass(frozen=True)
class ChannelSecrets:
    url: str
    secret: str


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/services/T0/B0/XXXX` -> `https://hooks.slack.com/…XXXX`."""
    if not url:
        return ""
    parts = urlsplit(url)
    tail = url[-4:] if len(url) >= 24 else ""
    return f"{parts.scheme}://{parts.hostname or ''}/…{tail}"


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def channel_secrets_seal(*, channel: AlertChannel, url: str, secret: str) -> None:
    """Seal `url` (Slack; "" for a webhook) and `secret` (webhook) into `channel` (not saved)."""
    key = datakey_active(workspace=channel.workspace)
    dek = vault.unwrap_data_key(channel.workspace_id, key.wrapped_dek, key.key_version)
    _seal_with(channel, key, dek, ChannelSecrets(url=url, secret=secret))
    if channel.kind == ChannelKind.SLACK:
        channel.url = mask_url(url)  # a webhook's URL stays in clear: it is where, not a key


def _seal_with(
    channel: AlertChannel, key: WorkspaceDataKey, dek: bytes, values: ChannelSecrets
) -> None:
    payload = json.dumps({"url": values.url, "secret": values.secret})
    channel.sealed_nonce, channel.sealed = vault.encrypt_with_dek(
        channel.workspace_id, dek, payload
    )
    channel.data_key = key
    channel.secret = ""


def channel_secrets_open(*, channel: AlertChannel) -> ChannelSecrets:
    """The channel's real URL and signing secret, for delivery only. Raises vault.VaultError."""
    if not channel.sealed:
        return ChannelSecrets(url=channel.url, secret=channel.secret)
    key = channel.data_key
    if key is None:
        raise vault.VaultError("sealed channel without a data key")
    dek = vault.unwrap_data_key(channel.workspace_id, key.wrapped_dek, key.key_version)
    data = json.loads(
        vault.decrypt_with_dek(channel.workspace_id, dek, channel.sealed_nonce, channel.sealed)
    )
    url = data.get("url") or channel.url
    return ChannelSecrets(url=url, secret=data.get("secret", ""))


def channel_secrets_reseal(*, workspace_id: int, key: WorkspaceDataKey, dek: bytes) -> None:
    """Re-encrypt every sealed channel of a workspace under a new data key (data-key rotation)."""
    channels = AlertChannel.objects.filter(workspace_id=workspace_id).exclude(sealed="")
    for channel in channels.select_for_update(of=("self",)).select_related("data_key"):
        values = channel_secrets_open(channel=channel)
        _seal_with(channel, key, dek, values)
        channel.save(update_fields=["sealed_nonce", "sealed", "data_key", "secret"])
