"""Input rules for provider credentials (base URLs, sizes). Raise Django ValidationError dicts."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from core.egress import EgressPolicy, EgressRefused
from gateway.models import PROVIDERS_NEEDING_BASE_URL, Provider

MAX_SECRET_CHARS = 4096


def validate_base_url(url: str, *, allow_private: bool | None = None) -> str:
    """Return the normalised URL or raise ValidationError({"base_url": ...})."""
    url = (url or "").strip()
    if not url:
        return ""
    if len(url) > 500:
        raise ValidationError({"base_url": "URL is too long (max 500 characters)."})
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValidationError({"base_url": "Not a valid URL."}) from exc
    if parts.scheme not in {"http", "https"}:
        raise ValidationError({"base_url": "Scheme must be http or https."})
    if not host:
        raise ValidationError({"base_url": "URL must include a host."})
    if parts.username or parts.password:
        raise ValidationError({"base_url": "Credentials in the URL are not allowed."})
    if parts.query or parts.fragment:
        raise ValidationError({"base_url": "Query strings and fragments are not allowed."})
    policy = EgressPolicy.from_settings(settings)
    if allow_private is not None:
        policy = EgressPolicy(allow_private=allow_private, allow=policy.allow)
    try:
        # The same policy every connection applies; names are resolved now too, and again
        # (authoritatively) on each connection, since DNS can change after saving.
        policy.check_url(url, must_resolve=False)
    except EgressRefused as exc:
        raise ValidationError(
            {"base_url": f"{exc} Private, loopback and link-local hosts are not allowed here."}
        ) from exc
    return url.rstrip("/")


def validate_credential_fields(
    *, provider: str, name: str, secret: str | None, base_url: str, timeout_s: int
) -> None:
    errors: dict[str, str] = {}
    if provider not in Provider.values:
        errors["provider"] = "Unknown provider."
    if not name.strip():
        errors["name"] = "This field may not be blank."
    elif len(name) > 100:
        errors["name"] = "Ensure this field has no more than 100 characters."
    if secret is not None:
        if len(secret) > MAX_SECRET_CHARS:
            errors["secret"] = f"Ensure this field has no more than {MAX_SECRET_CHARS} characters."
        elif not secret.strip() and provider not in {Provider.OLLAMA, Provider.VLLM}:
            errors["secret"] = "This field may not be blank."
    if provider in PROVIDERS_NEEDING_BASE_URL and not base_url:
        errors["base_url"] = f"Provider {provider!r} needs a base URL."
    if not 1 <= int(timeout_s) <= 600:
        errors["timeout_s"] = "Must be between 1 and 600 seconds."
    if errors:
        raise ValidationError(errors)


def require_secret_for_new_destination(
    *,
    current_base_url: str,
    current_provider: str,
    base_url: str | None,
    provider: str | None,
    secret_given: bool,
) -> None:
    """Changing where a stored secret is sent requires re-entering the secret.

    Otherwise an admin could point a key they cannot read at their own host and have the gateway
    (or "test connection") hand it over.
    """
    if secret_given:
        return
    errors = {}
    old_url = (current_base_url or "").rstrip("/")
    if base_url is not None and base_url.strip().rstrip("/") != old_url:
        errors["base_url"] = "Changing the base URL requires re-entering the secret."
    if provider is not None and provider != current_provider:
        errors["provider"] = "Changing the provider requires re-entering the secret."
    if errors:
        errors["secret"] = "Re-enter the secret to change where it is sent."
        raise ValidationError(errors)
