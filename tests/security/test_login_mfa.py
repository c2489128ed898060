"""Login throttling that one user cannot turn against another, and TOTP seeds sealed at rest."""

from __future__ import annotations

import importlib

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.apps import apps as django_apps
from django.test import Client

from tests.cast import PASSWORD


def _login(client: Client, email: str, password: str):
    return client.post("/accounts/login/", {"login": email, "password": password})


@pytest.fixture
def cast_fresh(redis_client, cast):
    """The cast, with an empty allauth rate-limit history (it lives in the Redis cache)."""
    return cast


def test_one_users_failures_do_not_lock_out_a_colleague_on_the_same_ip(cast_fresh):
    cast = cast_fresh
    attacker = Client()  # same REMOTE_ADDR (127.0.0.1) for every client here
    for _ in range(15):
        _login(attacker, cast.member.user.email, "wrong-password")
    # The targeted account is locked, even with its real password...
    locked = _login(Client(), cast.member.user.email, PASSWORD)
    assert locked.status_code == 200 and b"Too many failed login attempts" in locked.content
    # ...but a colleague behind the same address signs in.
    colleague = _login(Client(), cast.admin.user.email, PASSWORD)
    assert colleague.status_code == 302


def test_stuffing_many_addresses_from_one_ip_is_still_braked(cast_fresh):
    client = Client()
    answers = [_login(client, f"guess{n}@a.example", "wrong-password") for n in range(40)]
    assert all(r.status_code == 200 for r in answers[:5])
    # Past 30 a minute the address is refused outright (allauth's per-IP login_failed/login).
    braked = [
        r.status_code == 429 or b"Too many failed login attempts" in r.content for r in answers[30:]
    ]
    assert all(braked)


def _current_code(secret: str) -> str:
    counter = next(iter(yield_hotp_counters_from_time()))
    return format_hotp_value(hotp_value(secret, counter))


def test_totp_seed_is_sealed_in_the_database_and_login_still_works(cast_fresh):
    user = cast_fresh.member.user
    seed = generate_totp_secret()
    TOTP.activate(user, seed)
    stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
    assert seed not in stored and stored.startswith("alephant:v1:")

    client = Client()
    first = _login(client, user.email, PASSWORD)
    assert first.status_code == 302 and "/2fa/" in first["Location"]
    wrong = client.post(first["Location"], {"code": "000000"})
    assert wrong.status_code == 200  # stays on the code form
    done = client.post(first["Location"], {"code": _current_code(seed)})
    assert done.status_code == 302 and "/2fa/" not in done["Location"]
    home = client.get("/")
    assert "/accounts/login" not in home.get("Location", "")  # signed in


def test_a_seed_stored_before_sealing_still_signs_in(cast_fresh):
    user = cast_fresh.admin.user
    seed = generate_totp_secret()
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": seed})
    client = Client()
    first = _login(client, user.email, PASSWORD)
    done = client.post(first["Location"], {"code": _current_code(seed)})
    assert done.status_code == 302 and "/2fa/" not in done["Location"]


def test_the_migration_seals_seeds_stored_in_plaintext(cast_fresh):
    migration = importlib.import_module("workspaces.migrations.0006_seal_totp_seeds")
    user = cast_fresh.finance.user
    seed = generate_totp_secret()
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": seed})
    migration.seal(django_apps, None)
    migration.seal(django_apps, None)  # idempotent: sealed once, not twice
    stored = Authenticator.objects.get(user=user).data["secret"]
    assert stored.startswith("alephant:v1:") and seed not in stored
    client = Client()
    first = _login(client, user.email, PASSWORD)
    done = client.post(first["Location"], {"code": _current_code(seed)})
    assert done.status_code == 302 and "/2fa/" not in done["Location"]
