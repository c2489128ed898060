"""Forms for the key pages. They parse and validate input; `gateway.services.keys` writes."""

from __future__ import annotations

from django import forms

from gateway.models import Provider
from workspaces.forms import csv_list, set_choices
from workspaces.models import Agent, Member, Workspace


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
        set_choices(self, "provider", Provider.choices)


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
        return csv_list(self.cleaned_data["allowed_models"]) or None


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
        set_choices(self, "holder", holders)
