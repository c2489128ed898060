"""The usage ledger: one row per call attempt, the system of record for spend.

Rows are appended by the ledger writer (`gateway/ledger_writer.py`) from the Redis stream
`alephant:usage`, idempotently by `request_id` (with `created_at`, below). Nothing updates or
deletes them; months past the retention are archived and dropped whole
(`billing/services/ledger_retention.py`).

The owner columns (key, member, department, agent, provider credential) are foreign keys
without a database constraint: the ledger is append-only history, so a batch must never fail
because a key or member was deleted between the call and the insert, and the attribution must
survive that deletion (the id stays, joins simply find nothing).

Partitioned by month (migration 0013, `billing/services/partitions.py`): the table is a range-
partitioned parent on `created_at`, one partition per UTC month plus a default one. A partitioned
table's unique constraints must contain the partition key, so in the database the primary key is
`(id, created_at)` and the idempotency key `UNIQUE (request_id, created_at)`. Idempotency holds:
the gateway fixes `created_at` in the usage event, so a replay carries the same pair and the
writer's `ON CONFLICT DO NOTHING` skips it.

Django keeps `id` as the model's primary key (not a 5.2 `CompositePrimaryKey`): `id` is unique in
practice (one identity sequence feeds every partition; nothing sets it by hand), and every
existing use goes on working unchanged: `pk` stays an int for the request-log URLs, API
serializers and the admin (which does not support composite keys), `get(pk=...)` and the rollup
watermark (`id > last_record_id`). `UPDATE`/`DELETE ... WHERE id = %s` find the one row through
the primary key's index on each partition.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from workspaces.models import TenantModel


def _owner_fk(to: str) -> models.ForeignKey:
    return models.ForeignKey(
        to,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )


class UsageRecord(TenantModel):
    request_id = models.CharField(max_length=64)  # unique with created_at: see Meta
    gateway_key = _owner_fk("gateway.GatewayKey")
    member = _owner_fk("workspaces.Member")
    department = _owner_fk("workspaces.Department")
    agent = _owner_fk("workspaces.Agent")
    session_id = models.CharField(max_length=128, blank=True, default="")
    session_path = models.CharField(max_length=512, blank=True, default="")
    session_name = models.CharField(max_length=256, blank=True, default="")
    properties = models.JSONField(default=dict, blank=True)
    provider = models.CharField(max_length=32)
    # The BYO provider key that served the call: reconciliation compares per provider key.
    provider_credential = _owner_fk("gateway.ProviderCredential")
    model = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=64)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    saved_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    cache_hit = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(default=200)
    error_type = models.CharField(max_length=64, blank=True, default="")
    estimated = models.BooleanField(default=False)
    stream = models.BooleanField(default=False)
    latency_ms = models.PositiveIntegerField(default=0)
    fingerprint = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["request_id", "created_at"], name="usage_request_id_created_at"
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="usage_ws_time"),
            models.Index(fields=["workspace", "member", "created_at"], name="usage_ws_member"),
            models.Index(fields=["workspace", "agent", "created_at"], name="usage_ws_agent"),
            models.Index(
                fields=["workspace", "department", "created_at"], name="usage_ws_department"
            ),
            models.Index(fields=["workspace", "session_id", "created_at"], name="usage_ws_session"),
            models.Index(fields=["workspace", "gateway_key", "created_at"], name="usage_ws_key"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.request_id} {self.provider}/{self.model} ${self.cost_usd}"
