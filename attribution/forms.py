"""Forms for the admin pages. They parse and validate input; the services do the writes."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from workspaces.models import Agent, Department, Member, Workspace


def _set_choices(form: forms.Form, name: str, choices: list) -> None:
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


def _csv(value: str) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


class ProviderKeyForm(forms.Form):
    provider = forms.ChoiceField(choices=[])
    name = forms.CharField(max_length=100)
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        max_length=4000,
        help_text="Stored encrypted; never shown again.",
    )
    base_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    api_version = forms.CharField(required=False, max_length=40)
    organization = forms.CharField(required=False, max_length=120)
    timeout_s = forms.IntegerField(min_value=1, max_value=600, initial=120)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from gateway.models import Provider

        _set_choices(self, "provider", Provider.choices)


class RotateSecretForm(forms.Form):
    secret = forms.CharField(widget=forms.PasswordInput(render_value=False), max_length=4000)


class KeyLimitsForm(forms.Form):
    expires_at = forms.DateTimeField(required=False, help_text="Optional, workspace time.")
    rpm = forms.IntegerField(required=False, min_value=1, label="Requests per minute")
    tpm = forms.IntegerField(required=False, min_value=1, label="Tokens per minute")
    allowed_models = forms.CharField(
        required=False, max_length=2000, help_text="Comma-separated; blank allows every model."
    )

    def clean_allowed_models(self) -> list[str] | None:
        return _csv(self.cleaned_data["allowed_models"]) or None


class GatewayKeyForm(KeyLimitsForm):
    name = forms.CharField(max_length=100)
    holder = forms.ChoiceField(label="Issued to")
    field_order = ["name", "holder", "expires_at", "rpm", "tpm", "allowed_models"]

    def __init__(self, *args, workspace: Workspace, actor: Member, **kwargs):
        super().__init__(*args, **kwargs)
        members = Member.objects.filter(workspace=workspace).select_related("user")
        agents = Agent.objects.filter(workspace=workspace)
        if not actor.can_manage:  # members issue keys to themselves and their own agents
            members = members.filter(pk=actor.pk)
            agents = agents.filter(owner=actor)
        holders = [(f"member:{m.pk}", f"Member {m.user.email}") for m in members]
        holders += [(f"agent:{a.pk}", f"Agent {a.slug}") for a in agents]
        _set_choices(self, "holder", holders)


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

    def __init__(self, *args, workspace: Workspace, **kwargs):
        super().__init__(*args, **kwargs)
        from billing.models.budgets import Metric, Period
        from gateway.models import GatewayKey

        _set_choices(self, "metric", Metric.choices)
        _set_choices(self, "period", Period.choices)
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
        _set_choices(self, "scope", scopes)

    def clean_ladder(self) -> list[int]:
        try:
            return [int(p) for p in _csv(self.cleaned_data["ladder"])]
        except ValueError as exc:
            raise ValidationError(
                "Whole percentages separated by commas, e.g. 50, 75, 90, 100."
            ) from exc

    def service_data(self) -> dict:
        data = dict(self.cleaned_data)
        scope_type, _, scope_id = data.pop("scope").partition(":")
        data["scope_type"], data["scope_id"] = scope_type, int(scope_id)
        return data

    @staticmethod
    def initial_for(budget) -> dict:
        return {
            "name": budget.name,
            "scope": f"{budget.scope_type}:{budget.scope_id}",
            "metric": budget.metric,
            "amount_usd": budget.amount_usd,
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
        from billing.models.alerts import ChannelKind

        _set_choices(self, "kind", ChannelKind.choices)

    def clean_emails(self) -> list[str]:
        emails = _csv(self.cleaned_data["emails"])
        field = forms.EmailField()
        return [field.clean(e) for e in emails]


def apply_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Show a service's ValidationError on the form: on the field it names, else on top."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            target = field if field in form.fields else None
            if field == "scope_id" or field == "scope_type":
                target = "scope" if "scope" in form.fields else None
            if field in ("member_id", "agent_id"):
                target = "holder" if "holder" in form.fields else None
            for error in errors:
                form.add_error(target, error if target else f"{field}: {error}")
    else:
        for error in exc.messages:
            form.add_error(None, error)
