"""Seal TOTP seeds stored in plaintext before MFAAdapter encrypted them (workspaces/adapters.py).

allauth never rewrites a seed once activated, so without this an old seed would stay readable in
the database for good. Idempotent: sealed values (prefix `alephant:v1:`) are left alone; the
reverse opens them again.
"""

from django.db import migrations

from core import vault

PURPOSE = "allauth-totp"  # workspaces.adapters.TOTP_PURPOSE, frozen here as migrations are


def _rewrite(apps, transform) -> None:
    Authenticator = apps.get_model("mfa", "Authenticator")
    for authenticator in Authenticator.objects.filter(type="totp").iterator():
        secret = authenticator.data.get("secret", "")
        new = transform(secret)
        if new != secret:
            authenticator.data = {**authenticator.data, "secret": new}
            authenticator.save(update_fields=["data"])


def seal(apps, schema_editor) -> None:
    _rewrite(
        apps,
        lambda s: s if s.startswith("alephant:v1:") else vault.seal_for_purpose(PURPOSE, s),
    )


def unseal(apps, schema_editor) -> None:
    _rewrite(apps, lambda s: vault.open_for_purpose(PURPOSE, s))


class Migration(migrations.Migration):
    dependencies = [
        ("workspaces", "0005_apitoken_scope"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]

    operations = [migrations.RunPython(seal, unseal)]
