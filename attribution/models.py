"""Rollups of the usage ledger, the dashboard's read model.

`UsageRollup` holds one row per workspace x granularity (hour, day) x bucket x dimension x key,
with the sums the dashboard shows. Hour buckets are UTC hours; day buckets are the workspace's
local days (stored as the aware instant the local day starts), so a month in Tokyo sums to the
right days. The rows are derived data: `attribution.services.rollups` deletes and rebuilds whole
windows from the ledger, so re-running a window always gives the same numbers.

`RollupState` is the per-workspace watermark (highest ledger id already folded in).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from workspaces.models import TenantModel


class Granularity(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


class Dimension(models.TextChoices):
    WORKSPACE = "workspace", "Workspace"  # key "": the workspace total
    MEMBER = "member", "Member"  # key: member id, "" when unattributed
    AGENT = "agent", "Agent"
    DEPARTMENT = "department", "Department"
    GATEWAY_KEY = "gateway_key", "Gateway key"
    PROVIDER = "provider", "Provider"
    MODEL = "model", "Model"  # key: "provider/model"
    SESSION = "session", "Session"  # only calls that named a session
    PROPERTY = "property", "Custom property"  # key: "name=value"
    # Day buckets only: the breakdowns of the drill-down pages. key: "<id>|provider/model"
    # (or "provider/model|<member id>" for model:member); "" for an unattributed id.
    MEMBER_MODEL = "member:model", "Member by model"
    AGENT_MODEL = "agent:model", "Agent by model"
    DEPARTMENT_MODEL = "dept:model", "Department by model"
    KEY_MODEL = "key:model", "Gateway key by model"
    MODEL_MEMBER = "model:member", "Model by member"


class UsageRollup(TenantModel):
    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    bucket_start = models.DateTimeField()
    dimension = models.CharField(max_length=16, choices=Dimension.choices)
    key = models.CharField(max_length=400, blank=True, default="")
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    saved_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    errors = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    first_at = models.DateTimeField(null=True)
    last_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "granularity", "dimension", "key", "bucket_start"],
                name="rollup_unique_bucket",
            )
        ]
        indexes = [
            # The dashboard's shape: one dimension over a time range, grouped by key.
            models.Index(
                fields=["workspace", "granularity", "dimension", "bucket_start"],
                name="rollup_ws_dim_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket_start} {self.dimension}={self.key}"


class RollupState(TenantModel):
    """Watermark: every ledger row with id <= `last_record_id` is folded into the rollups."""

    last_record_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="rollup_state_one_per_workspace")
        ]


class SessionRollup(TenantModel):
    """One row per agent run (`Alephant-Session-Id`): whole-run totals and loop evidence.

    Rebuilt by the rollup for every session the new ledger rows (or the recent windows) touch,
    so the sessions page sorts runs without aggregating the ledger or the hourly rows.
    """

    session_id = models.CharField(max_length=400)
    session_name = models.CharField(max_length=256, blank=True, default="")
    agent_id = models.BigIntegerField(null=True)
    member_id = models.BigIntegerField(null=True)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    saved_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    errors = models.BigIntegerField(default=0)
    cache_hits = models.BigIntegerField(default=0)
    max_repeats = models.IntegerField(default=0)  # most calls sharing one request fingerprint
    loop_blocks = models.IntegerField(default=0)  # calls the loop breaker refused

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "session_id"], name="session_unique_id")
        ]
        indexes = [
            models.Index(fields=["workspace", "last_at"], name="session_ws_last"),
            # The sessions page's default order: walk runs by cost, stop after a page.
            models.Index(fields=["workspace", "-cost_usd"], name="session_ws_cost"),
        ]


class FoldTarget(models.TextChoices):
    BUCKET = "bucket", "Hour and day buckets"
    SESSION = "session", "Session summary"


class RollupFold(TenantModel):
    """A ledger row added to rollups that can no longer be rebuilt (they hold archived rows).

    Written in the transaction that adds the row; the unique constraint makes the addition
    happen once per row and target (see `attribution.services.archived`).
    """

    record_id = models.BigIntegerField()
    target = models.CharField(max_length=8, choices=FoldTarget.choices)
    folded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "record_id", "target"], name="rollup_fold_once"
            )
        ]
