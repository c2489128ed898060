"""What the workspace pages share: service errors shown on the form."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

# Services key some errors by API field name; pages show them on the matching form field.
_FIELD_ALIASES = {"owner_id": "owner", "department_id": "department"}


def add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """Put a service's `ValidationError` on the form: by field where the form has it."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for key, errors in error.message_dict.items():
        field = _FIELD_ALIASES.get(key, key)
        form.add_error(field if field in form.fields else None, errors)
