"""Gateway keys and provider credentials: services and Redis snapshots."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core import keyhash, vault
from gateway import snapshots
from gateway.models import GatewayKey, ProviderCredential
from gateway.services.datakeys import enc_for
from gateway.services.keys import (
    gateway_key_create,
    gateway_key_revoke,
    gateway_key_update,
    provider_key_create,
)
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-test-SUPERSECRET-0123456789abcdef"


def _snapshot(redis_client, key: str) -> dict | None:
    raw = redis_client.get(key)
    return json.loads(raw) if raw else None


def test_key_format_and_hash():
    raw, prefix = keyhash.generate_key()
    assert keyhash.looks_like_key(raw)
    assert raw.startswith(prefix + "_") and len(prefix) == 13
    assert len(raw) == len("alph_") + 8 + 1 + 40
    assert keyhash.hash_key(raw, "s1") != keyhash.hash_key(raw, "s2")
    assert len(keyhash.hash_key(raw, "s1")) == 64


def test_gateway_key_create_publishes_snapshot_and_revoke_marks_it(cast, redis_client):
    ws = cast.workspace
    with workspace_scope(ws.pk):
        agent = agent_create(workspace=ws, slug="bot", name="Bot", owner=cast.member)
        key, raw = gateway_key_create(
            workspace=ws,
            name="ci",
            member=cast.member,
            actor=cast.member,
            allowed_models=["gpt-4o-mini"],
            rpm=30,
            expires_at=timezone.now() + dt.timedelta(days=1),
        )
    key_hash = keyhash.hash_key(raw, settings.ALEPHANT_KEY_HASH_SECRET)
    assert key.key_hash == key_hash and raw not in json.dumps(key.__dict__, default=str)
    snap = _snapshot(redis_client, f"alephant:gk:{key_hash}")
    assert snap["v"] == 1 and snap["revoked"] is False
    assert snap["workspace_id"] == ws.pk and snap["key_id"] == key.pk
    assert snap["member_id"] == cast.member.pk
    assert snap["department_id"] == cast.member.department_id
    assert snap["member_agents"] == {
        "bot": {"agent_id": agent.pk, "agent_department_id": None}  # same department as owner
    }
    assert snap["allowed_models"] == ["gpt-4o-mini"] and snap["rpm"] == 30
    assert isinstance(snap["expires_at"], int)

    with workspace_scope(ws.pk):
        gateway_key_update(key=GatewayKey.objects.get(pk=key.pk), actor=cast.admin, tpm=1000)
    assert _snapshot(redis_client, f"alephant:gk:{key_hash}")["tpm"] == 1000

    with workspace_scope(ws.pk):
        gateway_key_revoke(key=GatewayKey.objects.get(pk=key.pk), actor=cast.admin)
    assert _snapshot(redis_client, f"alephant:gk:{key_hash}") == {"v": 1, "revoked": True}
    # Snapshots expire, so an out-of-band change is picked up by the loader within minutes.
    assert 0 < redis_client.ttl(f"alephant:gk:{key_hash}") <= snapshots.REVOKED_TTL_S
    assert 0 < redis_client.ttl(f"alephant:ws:{ws.pk}") or not redis_client.exists(
        f"alephant:ws:{ws.pk}"
    )


def test_agent_key_snapshot_and_cold_loader(cast, redis_client):
    ws = cast.workspace
    with workspace_scope(ws.pk):
        agent = agent_create(workspace=ws, slug="etl", name="ETL", owner=cast.member)
        key, _raw = gateway_key_create(workspace=ws, name="etl", agent=agent, actor=cast.member)
    redis_client.flushdb()
    snap = snapshots.load_snapshot("gk", key.key_hash)
    assert snap["agent_id"] == agent.pk and snap["member_id"] == cast.member.pk
    assert snap["member_agents"] == {}
    assert _snapshot(redis_client, f"alephant:gk:{key.key_hash}") == snap
    assert 0 < redis_client.ttl(f"alephant:gk:{key.key_hash}") <= snapshots.SNAPSHOT_TTL_S
    assert snapshots.load_snapshot("gk", "0" * 64) is None
    assert redis_client.get(f"alephant:gk:{'0' * 64}") is None


def test_snapshots_written_together_do_not_expire_together(cast, redis_client):
    """A burst of keys (a bulk import, a rebuild after a flush) must not all expire in the same
    second, or every gateway reloads them all from Postgres at once."""
    ws = cast.workspace
    with workspace_scope(ws.pk):
        keys = [
            gateway_key_create(workspace=ws, name=f"k{i}", member=cast.member, actor=cast.member)
            for i in range(30)
        ]
    ttls = {redis_client.ttl(f"alephant:gk:{key.key_hash}") for key, _raw in keys}
    assert all(snapshots.SNAPSHOT_TTL_S * 4 // 5 - 1 <= t <= snapshots.SNAPSHOT_TTL_S for t in ttls)
    assert len(ttls) >= 10  # 30 draws from 61 values: fewer than 10 distinct is ~impossible


def test_member_cannot_issue_keys_for_others(cast, redis_client):
    ws = cast.workspace
    with workspace_scope(ws.pk):
        with pytest.raises(PermissionDenied):
            gateway_key_create(workspace=ws, name="x", member=cast.admin, actor=cast.member)
        with pytest.raises(ValidationError):
            gateway_key_create(workspace=ws, name="x", actor=cast.admin)
        assert not GatewayKey.objects.exists()


def test_provider_key_workspace_snapshot_opens_with_django_free_vault(cast, redis_client):
    ws = cast.workspace
    with workspace_scope(ws.pk):
        credential = provider_key_create(
            workspace=ws, actor=cast.admin, provider="openai", name="main", secret=SECRET
        )
        assert credential.last4 == SECRET[-4:]
        with pytest.raises(ValidationError) as err:
            provider_key_create(
                workspace=ws, actor=cast.admin, provider="openai", name="main", secret=SECRET
            )
        assert "name" in err.value.message_dict
        with pytest.raises(PermissionDenied):
            provider_key_create(
                workspace=ws, actor=cast.member, provider="openai", name="m2", secret=SECRET
            )
    snap = _snapshot(redis_client, f"alephant:ws:{ws.pk}")
    assert snap["v"] == 1 and snap["workspace_id"] == ws.pk and snap["rpm_floor"] == 100
    (cred,) = snap["credentials"]
    assert cred["provider"] == "openai" and cred["name"] == "main"
    assert set(cred["enc"]) == {"wrapped_dek", "nonce", "ciphertext", "key_version"}
    assert SECRET not in json.dumps(snap)
    assert vault.open_secret(ws.pk, cred["enc"]) == SECRET
    with pytest.raises(vault.VaultError):
        vault.open_secret(cast.other_workspace.pk, cred["enc"])
    with workspace_scope(ws.pk):
        stored = ProviderCredential.objects.get()
        assert vault.open_secret(ws.pk, enc_for(stored)) == SECRET
