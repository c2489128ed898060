"""Forms for the budget and alert-channel pages. They parse and validate input; the services in
`billing.services` write."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.core.exceptions import ValidationError

from billing.models.alerts import ChannelKind
from billing.models.budgets import KEYED_SCOPES, Metric, Period, ScopeType
from core.money import usd_exact
from gateway.models import GatewayKey
from workspaces.forms import csv_list, set_choices
from workspaces.models import Agent, Department, Member, Workspace


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=120, required=False)
    scope = forms.ChoiceField()
    metric = forms.ChoiceField(choices=[])
    amount_usd = forms.DecimalField(
        required=False, min_value=0, max_digits=14, decimal_places=6, label="Amount (USD)"
    )
    limit_count = forms.IntegerField(
        required=False, min_value=0, label="Limit (requests or tokens)"
    )
    period = forms.ChoiceField(choices=[])
    ladder = forms.CharField(initial="50, 75, 90, 100", help_text="Alert at these percentages.")
    throttle_at = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100,
        initial=90,
        help_text="Past this percentage the rate cap drops.",
    )
    throttle_rpm = forms.IntegerField(required=False, min_value=1, initial=10)
    hard_stop = forms.BooleanField(
        required=False, initial=True, help_text="Refuse calls (HTTP 402) at 100%."
    )
    model_filter = forms.CharField(
        required=False, max_length=200, help_text="Optional glob, e.g. gpt-4o* or anthropic/*"
    )
    property_name = forms.CharField(
        required=False,
        max_length=64,
        help_text="Tag budgets: the header Alephant-Property-<name>, e.g. project.",
    )
    property_value = forms.CharField(
        required=False, max_length=256, help_text="Tag budgets: the value, e.g. apollo."
    )
    customer_id = forms.CharField(
        required=False,
        max_length=256,
        label="Customer id",
        help_text="Customer budgets: the header Alephant-Customer, e.g. acme.",
    )

    def __init__(self, *args, workspace: Workspace, **kwargs):
        super().__init__(*args, **kwargs)
        set_choices(self, "metric", Metric.choices)
        set_choices(self, "period", Period.choices)
        scopes = [(f"workspace:{workspace.pk}", f"Workspace {workspace.name}")]
        scopes += [
            (f"department:{d.pk}", f"Department {d.name}")
            for d in Department.objects.filter(workspace=workspace)
        ]
        scopes += [
            (f"member:{m.pk}", f"Member {m.user.email}")
            for m in Member.objects.filter(workspace=workspace).select_related("user")
        ]
        scopes += [
            (f"agent:{a.pk}", f"Agent {a.slug}") for a in Agent.objects.filter(workspace=workspace)
        ]
        scopes += [
            (f"key:{k.pk}", f"Key {k.name} ({k.prefix})")
            for k in GatewayKey.objects.filter(workspace=workspace, revoked_at__isnull=True)
        ]
        # Keyed scopes carry no row id: their key comes from the fields below.
        scopes += [
            (f"{ScopeType.PROPERTY}:", "Tag (a custom property value)"),
            (f"{ScopeType.CUSTOMER}:", "End customer"),
        ]
        set_choices(self, "scope", scopes)

    def clean_ladder(self) -> list[int]:
        try:
            return [int(p) for p in csv_list(self.cleaned_data["ladder"])]
        except ValueError as exc:
            raise ValidationError(
                "Whole percentages separated by commas, e.g. 50, 75, 90, 100."
            ) from exc

    def clean(self) -> dict:
        data = super().clean() or {}
        scope_type = (data.get("scope") or "").partition(":")[0]
        if scope_type == ScopeType.PROPERTY:
            for name in ("property_name", "property_value"):
                if not data.get(name):
                    self.add_error(name, "Required for a tag budget.")
            if "=" in (data.get("property_name") or ""):
                self.add_error("property_name", "A property name has no '='.")
        elif scope_type == ScopeType.CUSTOMER and not data.get("customer_id"):
            self.add_error("customer_id", "Required for a customer budget.")
        return data

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        scope_type, _, scope_id = data.pop("scope").partition(":")
        keyed = {k: data.pop(k) for k in ("property_name", "property_value", "customer_id")}
        data["scope_type"] = scope_type
        if scope_type in KEYED_SCOPES:
            data["scope_id"] = None
            if scope_type == ScopeType.PROPERTY:
                data["property_name"] = keyed["property_name"]
                data["property_value"] = keyed["property_value"]
            else:
                data["customer_id"] = keyed["customer_id"]
        else:
            data["scope_id"] = int(scope_id)
        return data

    @staticmethod
    def initial_for(budget) -> dict:
        keyed = {}
        if budget.scope_type == ScopeType.PROPERTY:
            name, _, value = budget.scope_key.partition("=")
            keyed = {"property_name": name, "property_value": value}
        elif budget.scope_type == ScopeType.CUSTOMER:
            keyed = {"customer_id": budget.scope_key}
        return {
            "name": budget.name,
            "scope": (
                f"{budget.scope_type}:"
                if budget.scope_type in KEYED_SCOPES
                else f"{budget.scope_type}:{budget.scope_id}"
            ),
            **keyed,
            "metric": budget.metric,
            # "400.00", not the column's "400.000000": exact, trailing zeros trimmed.
            "amount_usd": usd_exact(budget.amount_usd) if budget.amount_usd is not None else None,
            "limit_count": budget.limit_count,
            "period": budget.period,
            "ladder": ", ".join(str(s) for s in budget.ladder or []),
            "throttle_at": budget.throttle_at,
            "throttle_rpm": budget.throttle_rpm,
            "hard_stop": budget.hard_stop,
            "model_filter": budget.model_filter,
        }


class ChannelForm(forms.Form):
    kind = forms.ChoiceField(choices=[])
    name = forms.CharField(max_length=120)
    url = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Slack incoming webhook or your webhook URL.",
    )
    emails = forms.CharField(
        required=False, max_length=2000, help_text="Extra email addresses, comma-separated."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        set_choices(self, "kind", ChannelKind.choices)

    def clean_emails(self) -> list[str]:
        emails = csv_list(self.cleaned_data["emails"])
        field = forms.EmailField()
        return [field.clean(e) for e in emails]


class TopUpForm(forms.Form):
    amount_usd = forms.DecimalField(
        min_value=Decimal("0.000001"), max_digits=14, decimal_places=6, label="Top up (USD)"
    )
    note = forms.CharField(required=False, max_length=500, help_text="e.g. a purchase order.")


class ResetForm(forms.Form):
    reason = forms.CharField(max_length=1000, help_text="Why (kept in the audit log).")
