"""Input rules for provider credentials (base URLs, sizes). Raise Django ValidationError dicts."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from gateway.models import PROVIDERS_NEEDING_BASE_URL, Provider

MAX_SECRET_CHARS = 4096


def _private_host(host: str) -> bool:
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(lowered.strip("[]"))
    except ValueError:
        return False  # a DNS name; resolution happens at the gateway (see README)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


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
    if allow_private is None:
        allow_private = settings.ALEPHANT_ALLOW_PRIVATE_UPSTREAMS
    if not allow_private and _private_host(host):
        raise ValidationError(
            {"base_url": "Private, loopback and link-local hosts are not allowed here."}
        )
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
