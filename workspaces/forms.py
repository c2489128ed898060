"""HTML forms: input shape only. Invariants (uniqueness, who may do what) live in services."""

from __future__ import annotations

import zoneinfo

from allauth.core import context as allauth_context
from django import forms
from django.core.exceptions import ValidationError

from workspaces.adapters import pending_invitation
from workspaces.models import Department, Member, Role, TokenScope, Workspace
from workspaces.selectors import department_list, member_list


class SignupExtraForm(forms.Form):
    """Extra field on allauth's sign-up form (`ACCOUNT_SIGNUP_FORM_CLASS`)."""

    workspace_name = forms.CharField(
        label="Workspace name",
        max_length=120,
        required=False,
        help_text="Optional. Defaults to your company's name from your email address.",
        widget=forms.TextInput(attrs={"placeholder": "Workspace name (optional)"}),
    )

    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=lambda: _time_zone_choices(),
        initial="UTC",
        required=False,
        help_text="Days, months and budget resets of your workspace follow it.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Opened from an invitation link: the address is the invited one, shown and locked
        # (a typo would make a second account and workspace). The adapter's `clean_email`
        # refuses any other address, so the lock is not only cosmetic.
        request = allauth_context.request
        pending = pending_invitation(request) if request is not None else None
        email = self.fields.get("email")
        if pending and email is not None:
            self.initial["email"] = pending["email"]
            email.widget.attrs.update({"readonly": "readonly", "data-locked": "invitation"})
            email.help_text = "The address this invitation was sent to."

    def signup(self, request, user) -> None:
        """Nothing to do here: `workspaces.adapters.AccountAdapter.save_user` onboards."""


class InvitationForm(forms.Form):
    email = forms.EmailField(max_length=254)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(), required=False, empty_label="No department"
    )

    def __init__(self, *args, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        department_field = self.fields["department"]
        assert isinstance(department_field, forms.ModelChoiceField)
        department_field.queryset = department_list(workspace=workspace)


class MemberForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(), required=False, empty_label="No department"
    )

    def __init__(self, *args, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        department_field = self.fields["department"]
        assert isinstance(department_field, forms.ModelChoiceField)
        department_field.queryset = department_list(workspace=workspace)


class MemberLimitsForm(forms.Form):
    """A member's limits (owners/admins); blank means no limit. Invariants live in
    `workspaces.services.limits`."""

    allowed_models = forms.CharField(
        required=False,
        max_length=4000,
        help_text="Comma-separated model names or globs (gpt-4o-mini*); blank: any.",
    )
    rpm = forms.IntegerField(required=False, min_value=1, label="Requests per minute")
    tpm = forms.IntegerField(required=False, min_value=1, label="Tokens per minute")
    key_lifetime_days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, label="Key lifetime (days)"
    )
    keys_expire_at = forms.DateTimeField(
        required=False,
        label="Keys expire at (UTC)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )


class DepartmentForm(forms.Form):
    name = forms.CharField(max_length=120)


class MemberChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return obj.user.email


class AgentForm(forms.Form):
    slug = forms.SlugField(
        max_length=64, help_text="What callers send in the Alephant-Agent header."
    )
    name = forms.CharField(max_length=120)
    owner = MemberChoiceField(queryset=Member.objects.none())
    department = forms.ModelChoiceField(
        queryset=Department.objects.none(),
        required=False,
        empty_label="Owner's department",
    )
    description = forms.CharField(
        max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, workspace: Workspace, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        owner_field = self.fields["owner"]
        department_field = self.fields["department"]
        assert isinstance(owner_field, forms.ModelChoiceField)
        assert isinstance(department_field, forms.ModelChoiceField)
        owner_field.queryset = member_list(workspace=workspace)
        department_field.queryset = department_list(workspace=workspace)


def _time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class WorkspaceForm(forms.Form):
    name = forms.CharField(max_length=120)
    time_zone = forms.ChoiceField(choices=_time_zone_choices, initial="UTC")


# --- helpers for every app's forms ---------------------------------------------------------


def set_choices(form: forms.Form, name: str, choices: list) -> None:
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    field.choices = choices


def csv_list(value: str) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


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


class APITokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scope = forms.ChoiceField(
        choices=[],
        help_text="read: GET only; write: also keys, budgets, agents, channels; admin: also "
        "members, invitations and tokens. Always within your role.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at (UTC, optional)",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        set_choices(self, "scope", TokenScope.choices)
        self.fields["scope"].initial = TokenScope.READ
