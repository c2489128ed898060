"""factory-boy factories for rows tests need many of: users and ledger rows.

Workspaces, members and departments come from their services (`tests/cast.py`), which keep their
invariants (owner membership, RLS scope); plain rows without such rules come from here. Create
tenant rows inside `workspace_scope(workspace.pk)`: RLS applies to tests too.
"""

from __future__ import annotations

from decimal import Decimal

import factory

from billing.models import UsageRecord
from workspaces.models import User

PASSWORD = "correct-horse-battery-staple-42"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # The manager hashes the password (the fast test hasher, alephant.settings.test).
        password = kwargs.pop("password", PASSWORD)
        return model_class.objects.create_user(*args, password=password, **kwargs)


class UsageRecordFactory(factory.django.DjangoModelFactory):
    """One ledger row: an OpenAI chat call, 100 in / 50 out, $0.001 unless told otherwise."""

    class Meta:
        model = UsageRecord

    request_id = factory.Sequence(lambda n: f"req-{n:06d}")
    provider = "openai"
    model = "gpt-4o-mini"
    endpoint = "chat.completions"
    input_tokens = 100
    output_tokens = 50
    cost_usd = Decimal("0.001")
    fingerprint = factory.Sequence(lambda n: f"fp-{n:06d}")  # distinct requests unless told
