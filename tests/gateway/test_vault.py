"""The vault: envelope encryption, tamper resistance, rotation, start-up checks."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from core import vault
from gateway import snapshots
from gateway.models import ProviderCredential, WorkspaceDataKey
from gateway.services.datakey_rotation import datakey_rotate
from gateway.services.datakeys import enc_for
from gateway.services.keys import provider_key_create, provider_key_reveal
from gateway.services.vault_check import check_master_key
from workspaces.tenancy import workspace_scope

K_OLD = "old-master-key-material-0123456789abcdef"
K_NEW = "new-master-key-material-fedcba9876543210"
SECRET = "sk-proj-VERY-SECRET-VALUE-xyz-987654321"


@pytest.fixture(autouse=True)
def _restore_keyring():
    yield
    vault.set_keyring(None)


def ring(current: str, *previous: str) -> vault.Keyring:
    return vault.Keyring(
        vault.MasterKey.from_material(current),
        tuple(vault.MasterKey.from_material(p) for p in previous),
    )


def _flip(b64: str, index: int = -1) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _sealed(workspace_id: int, secret: str = SECRET) -> dict:
    wrapped, version = vault.wrap_data_key(workspace_id, vault.new_data_key())
    return vault.seal_secret(workspace_id, secret, wrapped_dek=wrapped, key_version=version)


def test_round_trip_and_no_plaintext_in_enc():
    vault.set_keyring(ring(K_OLD))
    enc = _sealed(7)
    assert set(enc) == {"wrapped_dek", "nonce", "ciphertext", "key_version"}
    assert SECRET not in json.dumps(enc)
    assert vault.open_secret(7, enc) == SECRET
    assert vault.open_secret(7, _sealed(7, "ünïcødé-🔑")) == "ünïcødé-🔑"


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_dek"])
@pytest.mark.parametrize("index", [0, -1])
def test_a_flipped_byte_fails(field, index):
    vault.set_keyring(ring(K_OLD))
    enc = _sealed(7)
    enc[field] = _flip(enc[field], index)
    with pytest.raises(vault.VaultError):
        vault.open_secret(7, enc)


def test_ciphertext_moved_to_another_workspace_fails():
    vault.set_keyring(ring(K_OLD))
    enc_a, enc_b = _sealed(1), _sealed(2)
    with pytest.raises(vault.VaultError):
        vault.open_secret(2, enc_a)  # whole enc (its wrapped DEK is bound to workspace 1)
    with pytest.raises(vault.VaultError):  # B's data key, A's ciphertext, opened as B
        vault.open_secret(2, {**enc_b, "nonce": enc_a["nonce"], "ciphertext": enc_a["ciphertext"]})


def test_wrong_or_missing_master_key():
    vault.set_keyring(ring(K_OLD))
    enc = _sealed(3)
    vault.set_keyring(ring(K_NEW))
    with pytest.raises(vault.MasterKeyMismatch):
        vault.open_secret(3, enc)
    with pytest.raises(vault.MasterKeyMissing):
        vault.keyring_from_env({})
    with pytest.raises(vault.MasterKeyMissing):
        vault.keyring_from_env({"ALEPHANT_MASTER_KEY_FILE": "/nonexistent/master.key"})
    with pytest.raises(vault.MasterKeyMissing):
        vault.keyring_from_env({"ALEPHANT_MASTER_KEY": "short"})
    both = vault.keyring_from_env(
        {"ALEPHANT_MASTER_KEY": K_NEW, "ALEPHANT_MASTER_KEY_PREVIOUS": K_OLD}
    )
    assert [k.version for k in both.all()] == [
        ring(K_NEW).current.version,
        ring(K_OLD).current.version,
    ]
    assert "key=" not in repr(both.current) and K_NEW not in repr(both)


def test_key_file_is_read(tmp_path):
    path = tmp_path / "master.key"
    path.write_text(K_OLD + "\n")
    from_file = vault.keyring_from_env({"ALEPHANT_MASTER_KEY_FILE": str(path)})
    assert from_file.current.version == ring(K_OLD).current.version


def _credentials(cast):
    made = {}
    for ws in (cast.workspace, cast.other_workspace):
        owner = cast.owner if ws == cast.workspace else cast.outsider
        with workspace_scope(ws.pk):
            made[ws.pk] = [
                provider_key_create(
                    workspace=ws,
                    actor=owner,
                    provider="openai",
                    name=f"k{i}",
                    secret=f"{SECRET}-{ws.pk}-{i}",
                )
                for i in range(2)
            ]
    return made


def _all_secrets(cast) -> dict[int, list[str]]:
    out = {}
    for ws in (cast.workspace, cast.other_workspace):
        with workspace_scope(ws.pk):
            out[ws.pk] = [
                vault.open_secret(ws.pk, enc_for(c))
                for c in ProviderCredential.objects.select_related("data_key").order_by("name")
            ]
    return out


def test_database_holds_no_plaintext(cast):
    made = _credentials(cast)
    for ws_id, credentials in made.items():
        with workspace_scope(ws_id), connection.cursor() as cursor:
            for table in (
                "gateway_providercredential",
                "gateway_workspacedatakey",
                "workspaces_auditlog",
            ):
                cursor.execute(f"SELECT * FROM {table}")
                dump = json.dumps(cursor.fetchall(), default=str)
                for i in range(2):
                    plain = f"{SECRET}-{ws_id}-{i}"
                    assert plain not in dump
                    assert base64.b64encode(plain.encode()).decode()[:20] not in dump
                    assert "VERY-SECRET" not in dump
    assert credentials[0].last4 == f"{SECRET}-{ws_id}-0"[-4:]


def test_master_key_rotation_keeps_every_secret_usable(
    cast, django_capture_on_commit_callbacks, redis_client
):
    vault.set_keyring(ring(K_OLD))
    _credentials(cast)
    before = _all_secrets(cast)
    old_version = ring(K_OLD).current.version
    new_version = ring(K_NEW).current.version

    # Step 1: every process now has the new key as current and the old one as previous.
    vault.set_keyring(ring(K_NEW, K_OLD))
    assert _all_secrets(cast) == before  # old-wrapped keys still open (zero downtime)
    with pytest.raises(Exception, match="still under an older master key"):
        call_command("rotate_master_key", "--check")

    # Step 2: re-wrap.
    with django_capture_on_commit_callbacks(execute=True):
        call_command("rotate_master_key")
    for ws in (cast.workspace, cast.other_workspace):
        with workspace_scope(ws.pk):
            assert set(WorkspaceDataKey.objects.values_list("key_version", flat=True)) == {
                new_version
            }
        snap = json.loads(redis_client.get(snapshots.workspace_redis_key(ws.pk)))
        assert {c["enc"]["key_version"] for c in snap["credentials"]} == {new_version}
    call_command("rotate_master_key", "--check")

    # Step 3: drop the old key; everything still opens. The old key alone no longer does.
    vault.set_keyring(ring(K_NEW))
    assert _all_secrets(cast) == before
    vault.set_keyring(ring(K_OLD))
    with pytest.raises(vault.MasterKeyMismatch):
        _all_secrets(cast)
    assert old_version != new_version


def test_data_key_rotation_reencrypts_the_workspace(cast):
    vault.set_keyring(ring(K_OLD))
    made = _credentials(cast)
    before = _all_secrets(cast)
    ws = cast.workspace
    old_ciphertexts = {c.pk: c.ciphertext for c in made[ws.pk]}
    with workspace_scope(ws.pk):
        old_key = WorkspaceDataKey.objects.get(active=True)
        new_key = datakey_rotate(workspace=ws)
        assert new_key.version == old_key.version + 1
        assert not WorkspaceDataKey.objects.filter(pk=old_key.pk).exists()
        for credential in ProviderCredential.objects.all():
            assert credential.data_key_id == new_key.pk
            assert credential.ciphertext != old_ciphertexts[credential.pk]
            assert provider_key_reveal(credential=credential).startswith(SECRET)
    assert _all_secrets(cast) == before
    with workspace_scope(cast.other_workspace.pk):  # the other workspace is untouched
        assert WorkspaceDataKey.objects.get().version == 1


def test_start_up_check(cast, monkeypatch):
    vault.set_keyring(ring(K_OLD))
    check_master_key()  # no data keys yet: a fresh database starts
    _credentials(cast)
    check_master_key()
    vault.set_keyring(ring(K_NEW))
    with pytest.raises(ImproperlyConfigured, match="does not open the stored data keys"):
        check_master_key()
    vault.set_keyring(ring(K_NEW, K_OLD))  # mid-rotation: fine
    check_master_key()
    vault.set_keyring(None)
    monkeypatch.delenv("ALEPHANT_MASTER_KEY", raising=False)
    monkeypatch.delenv("ALEPHANT_MASTER_KEY_FILE", raising=False)
    with pytest.raises(ImproperlyConfigured, match="no master key"):
        check_master_key()
