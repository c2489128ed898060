"""Budgets and quotas: a limit on one scope (workspace, department, member, agent, key).

One model covers the four kinds of limit, so every one of them is checked by the same atomic
Redis script on the same chain:

* `usd`: spend per period (`amount_usd`), the classic budget;
* `requests` / `tokens`: request or token quotas per period (`limit_count`);
* `request_usd`: a per-request cost cap (`amount_usd`): a call whose worst case is above it is
  refused (key or agent scope; no counter, no period);
* `rpm`: a requests-per-minute rate cap on the scope (`limit_count`; sliding 60 s window).

The gateway reads them from the workspace snapshot (`billing/snapshots.py`), never from here.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.money import NANOS_PER_USD, format_usd
from workspaces.models import TenantModel

DEFAULT_LADDER = [50, 75, 90, 100]


def default_ladder() -> list[int]:
    return list(DEFAULT_LADDER)


class ScopeType(models.TextChoices):
    WORKSPACE = "workspace", "Workspace"
    DEPARTMENT = "department", "Department"
    MEMBER = "member", "Member"
    AGENT = "agent", "Agent"
    KEY = "key", "Gateway key"
    PROPERTY = "property", "Custom property value"  # Alephant-Property-<name>: <value>
    CUSTOMER = "customer", "End customer"  # Alephant-Customer: <id>


# Scopes named by a string a call carries, not by a row: `scope_key` holds it.
KEYED_SCOPES = frozenset({ScopeType.PROPERTY, ScopeType.CUSTOMER})
# The property `Alephant-Customer` is recorded under (gateway/hotpath/routing.py).
CUSTOMER_PROPERTY = "customer"


class Period(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    LIFETIME = "lifetime", "Lifetime"


class Metric(models.TextChoices):
    USD = "usd", "Spend (USD)"
    REQUESTS = "requests", "Requests"
    TOKENS = "tokens", "Tokens"
    REQUEST_USD = "request_usd", "Per-request cost cap (USD)"
    RPM = "rpm", "Requests per minute (rate cap)"


MONEY_METRICS = frozenset({Metric.USD, Metric.REQUEST_USD})


def validate_ladder(value: object) -> None:
    if not isinstance(value, list) or not value or len(value) > 10:
        raise ValidationError("ladder must be a list of 1 to 10 percentages")
    if any(not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= 100 for s in value):
        raise ValidationError("ladder steps must be whole percentages between 1 and 100")
    if sorted(set(value)) != value:
        raise ValidationError("ladder steps must be increasing and distinct")


class Budget(TenantModel):
    name = models.CharField(max_length=120, blank=True, default="")
    scope_type = models.CharField(max_length=16, choices=ScopeType.choices)
    # The workspace id for workspace scope; otherwise the id of the department/member/agent/key
    # (property and customer budgets: the workspace id too, and the value in `scope_key`).
    scope_id = models.BigIntegerField()
    # property: "<name>=<value>"; customer: the customer id; other scopes: blank.
    scope_key = models.CharField(max_length=330, blank=True, default="")
    metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.USD)
    amount_usd = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    limit_count = models.BigIntegerField(null=True, blank=True)
    period = models.CharField(max_length=16, choices=Period.choices, default=Period.MONTH)
    ladder = models.JSONField(default=default_ladder, validators=[validate_ladder])
    throttle_at = models.PositiveSmallIntegerField(null=True, blank=True, default=90)
    throttle_rpm = models.PositiveIntegerField(null=True, blank=True, default=10)
    hard_stop = models.BooleanField(default=True)
    # Glob on the model name or "provider/model" (`gpt-4o*`, `anthropic/*`); blank: every model.
    model_filter = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        "workspaces.Member", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "scope_type", "scope_id"], name="budget_scope")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_usd__isnull=True) | Q(amount_usd__gte=0),
                name="budget_amount_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(limit_count__isnull=True) | Q(limit_count__gte=0),
                name="budget_count_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(throttle_at__isnull=True) | Q(throttle_at__lte=100),
                name="budget_throttle_at_percent",
            ),
        ]
        ordering = ["scope_type", "scope_id", "id"]

    def __str__(self) -> str:
        return f"{self.scope_type}:{self.scope_id} {self.limit_display}/{self.period}"

    @property
    def is_money(self) -> bool:
        return self.metric in MONEY_METRICS

    @property
    def limit_units(self) -> int:
        """The limit in counter units: nano-USD for money, requests or tokens otherwise."""
        if self.is_money:
            return int((self.amount_usd or Decimal(0)) * NANOS_PER_USD)
        return int(self.limit_count or 0)

    @property
    def limit_display(self) -> str:
        if self.is_money:
            return format_usd(self.amount_usd or Decimal(0))
        return f"{self.limit_count} {self.metric}"

    @property
    def property_name(self) -> str | None:
        return self.scope_key.split("=", 1)[0] if self.scope_type == ScopeType.PROPERTY else None

    @property
    def property_value(self) -> str | None:
        return self.scope_key.split("=", 1)[1] if self.scope_type == ScopeType.PROPERTY else None

    @property
    def customer_id(self) -> str | None:
        return self.scope_key if self.scope_type == ScopeType.CUSTOMER else None

    def clean(self) -> None:
        if self.is_money and self.amount_usd is None:
            raise ValidationError({"amount_usd": "required for a spend budget"})
        if not self.is_money and self.limit_count is None:
            raise ValidationError({"limit_count": "required for a request or token quota"})
        if self.metric == Metric.REQUEST_USD and self.scope_type not in (
            ScopeType.KEY,
            ScopeType.AGENT,
        ):
            raise ValidationError({"metric": "a per-request cap applies to a key or an agent"})


class GuardrailSettings(TenantModel):
    """Per-workspace guardrail knobs (one row at most; absent means the defaults)."""

    # Refuse (429 loop_detected) a repeated fingerprint instead of only alerting.
    loop_breaker = models.BooleanField(default=False)
    loop_max_repeats = models.PositiveIntegerField(null=True, blank=True)
    loop_window_s = models.PositiveIntegerField(null=True, blank=True)
    # Per-key requests/minute when the key sets none (default 100).
    rpm_floor = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], name="guardrail_settings_one_per_ws")
        ]
