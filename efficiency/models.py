"""Efficiency results per workspace and period: the report, its grades and its signals.

All three are tenant tables under RLS. A report is recomputed in place (same period): its
grades and signals are replaced in one transaction, so readers never see half a result.
Evidence holds request ids (not foreign keys): the ledger is append-only history.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from workspaces.models import TenantModel


def _entity_fk(to: str) -> models.ForeignKey:
    # Like the ledger: a deleted member/agent/department keeps its history (the id stays).
    return models.ForeignKey(
        to,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )


class Period(models.TextChoices):
    WEEK = "week", "Week"
    MONTH = "month", "Month"


class EntityKind(models.TextChoices):
    MEMBER = "member", "Member"
    AGENT = "agent", "Agent"
    DEPARTMENT = "department", "Department"


class Verdict(models.TextChoices):
    JUSTIFIED = "justified", "Justified"
    QUESTIONABLE = "questionable", "Questionable"
    WASTEFUL = "wasteful", "Wasteful"


class EfficiencyReport(TenantModel):
    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    computed_at = models.DateTimeField(default=timezone.now)
    rows = models.PositiveIntegerField(default=0)
    spend_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    saved_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    # SHA-256 of the ledger rows and thresholds the result was computed from.
    input_digest = models.CharField(max_length=64, blank=True, default="")
    # The thresholds and dollar floors this result used (strings: exact; part of the digest).
    thresholds = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "period", "period_start"], name="eff_report_unique_period"
            )
        ]
        ordering = ["-period_start", "period"]

    def __str__(self) -> str:
        return f"{self.period} from {self.period_start:%Y-%m-%d}"


class EfficiencyGrade(TenantModel):
    report = models.ForeignKey(EfficiencyReport, on_delete=models.CASCADE, related_name="grades")
    entity_kind = models.CharField(max_length=16, choices=EntityKind.choices)
    member = _entity_fk("workspaces.Member")
    agent = _entity_fk("workspaces.Agent")
    department = _entity_fk("workspaces.Department")
    label = models.CharField(max_length=200)
    requests = models.PositiveIntegerField(default=0)
    spend_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    saved_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    waste_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    # None / "": not enough spend to grade (below the report's grade floor).
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    grade = models.CharField(max_length=1, blank=True, default="")
    # Departments get a grade but no verdict (the verdict is per member and agent).
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True, default="")
    reason = models.TextField(blank=True, default="")
    capped_by = models.CharField(max_length=32, blank=True, default="")
    # Ranked by avoidable dollars (`waste_usd`), largest first.
    rank = models.PositiveIntegerField(default=0)
    # Where the waste happened: a member's own calls vs each agent ("via agents"), a department's
    # contributors, and the facts a trend compares (cache hits, spend per model).
    breakdown = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["workspace", "report", "entity_kind", "rank"], name="eff_grade_rank"
            )
        ]
        ordering = ["entity_kind", "rank"]

    def __str__(self) -> str:
        return f"{self.label}: {self.grade or 'not graded'} ({self.score})"

    @property
    def graded(self) -> bool:
        return bool(self.grade)

    @property
    def entity_id(self) -> int | None:
        return {
            "member": self.member_id,
            "agent": self.agent_id,
            "department": self.department_id,
        }.get(self.entity_kind)


class EfficiencySignal(TenantModel):
    report = models.ForeignKey(EfficiencyReport, on_delete=models.CASCADE, related_name="signals")
    kind = models.CharField(max_length=32)
    member = _entity_fk("workspaces.Member")
    agent = _entity_fk("workspaces.Agent")
    department = _entity_fk("workspaces.Department")
    veto = models.BooleanField(default=False)
    impact_usd = models.DecimalField(max_digits=24, decimal_places=12, default=0)
    summary = models.TextField()
    evidence = models.JSONField(default=dict)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.kind}: {self.summary}"


class EfficiencySettings(TenantModel):
    """A workspace's own dollar floors; None keeps the default (see `efficiency/conf.py`)."""

    grade_min_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    signal_min_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="eff_settings_one_per_workspace"),
            models.CheckConstraint(
                condition=models.Q(grade_min_usd__gte=0) | models.Q(grade_min_usd__isnull=True),
                name="eff_settings_grade_min_positive",
            ),
            models.CheckConstraint(
                condition=models.Q(signal_min_usd__gte=0) | models.Q(signal_min_usd__isnull=True),
                name="eff_settings_signal_min_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"efficiency floors {self.grade_min_usd} / {self.signal_min_usd}"


class CacheScope(models.TextChoices):
    WORKSPACE = "workspace", "Whole workspace"
    KEY = "key", "Gateway key"
    AGENT = "agent", "Agent"


class ResponseCachePolicy(TenantModel):
    """Opt-in to the gateway's exact-match response cache (`gateway/hotpath/cache.py`) for the whole
    workspace, one gateway key or one agent; the most specific policy wins, and the request
    header `Alephant-Cache: on|off` beats them all. Published in the workspace snapshot."""

    scope = models.CharField(max_length=16, choices=CacheScope.choices)
    gateway_key = models.ForeignKey(
        "gateway.GatewayKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    agent = models.ForeignKey(
        "workspaces.Agent", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    ttl_seconds = models.PositiveIntegerField(default=3600)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace"],
                condition=models.Q(scope="workspace"),
                name="cache_policy_one_per_workspace",
            ),
            models.UniqueConstraint(
                fields=["workspace", "gateway_key"],
                condition=models.Q(scope="key"),
                name="cache_policy_one_per_key",
            ),
            models.UniqueConstraint(
                fields=["workspace", "agent"],
                condition=models.Q(scope="agent"),
                name="cache_policy_one_per_agent",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(scope="workspace", gateway_key__isnull=True, agent__isnull=True)
                    | models.Q(scope="key", gateway_key__isnull=False, agent__isnull=True)
                    | models.Q(scope="agent", gateway_key__isnull=True, agent__isnull=False)
                ),
                name="cache_policy_target_matches_scope",
            ),
            models.CheckConstraint(
                condition=models.Q(ttl_seconds__gte=1, ttl_seconds__lte=30 * 86400),
                name="cache_policy_ttl_range",
            ),
        ]
        ordering = ["scope", "id"]

    def __str__(self) -> str:
        return f"cache {self.scope} {'on' if self.enabled else 'off'} ({self.ttl_seconds}s)"
