"""Test a stored provider key: list the provider's models with it (free, no tokens spent).

The secret is decrypted server-side for this one call and never returned; the result says
only whether the provider accepted it. Audit-logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from django.conf import settings

from core.egress import EgressPolicy, EgressRefused
from core.egress_http import egress_client
from gateway.hotpath.providers import adapter_for
from gateway.hotpath.providers.anthropic import DEFAULT_BASE_URL as ANTHROPIC_BASE
from gateway.hotpath.providers.base import Credential
from gateway.hotpath.providers.gemini import DEFAULT_BASE_URL as GEMINI_BASE
from gateway.models import ProviderCredential
from gateway.services.keys import provider_key_reveal
from workspaces.models import Member
from workspaces.services.audit import audit_record
from workspaces.services.throttle import action_throttle

TIMEOUT_S = 8.0


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    status: int | None
    message: str


def _request(credential: ProviderCredential, secret: str) -> tuple[str, dict[str, str]]:
    cred = Credential(
        id=credential.pk,
        provider=credential.provider,
        name=credential.name,
        base_url=credential.base_url or None,
        api_version=credential.api_version or None,
        organization=credential.organization or None,
        timeout_s=TIMEOUT_S,
        secret=secret,
    )
    if credential.provider == "anthropic":
        base = (credential.base_url or ANTHROPIC_BASE).rstrip("/").removesuffix("/v1")
        return f"{base}/v1/models", adapter_for("anthropic").headers(cred)
    if credential.provider == "gemini":
        base = (credential.base_url or GEMINI_BASE).rstrip("/").removesuffix("/v1beta")
        return f"{base}/v1beta/models", {"x-goog-api-key": secret}
    adapter = adapter_for(credential.provider)
    if credential.provider == "azure-openai":
        version = credential.api_version or adapter.DEFAULT_API_VERSION
        return (
            f"{adapter.base_url(cred)}/openai/models?api-version={version}",
            adapter.headers(cred),
        )
    return f"{adapter.base_url(cred)}/models", adapter.headers(cred)


ACCEPTED = "The provider accepted the key."
REJECTED = "The provider rejected the key."
# One answer for closed, filtered, refused by the egress policy, not HTTP, or any other HTTP
# status: anything finer turns this button into a port scanner.
UNREACHABLE = "Could not reach the provider with this key and base URL."


def _check(url: str, headers: dict[str, str]) -> CheckResult:
    policy = EgressPolicy.from_settings(settings)
    try:
        with egress_client(policy, timeout=TIMEOUT_S) as client:
            response = client.get(url, headers=headers)
    except (httpx.HTTPError, EgressRefused, OSError, ValueError):
        return CheckResult(False, None, UNREACHABLE)
    if 200 <= response.status_code < 300:
        return CheckResult(True, response.status_code, ACCEPTED)
    if response.status_code in (401, 403):
        return CheckResult(False, response.status_code, REJECTED)
    return CheckResult(False, None, UNREACHABLE)


def provider_key_test(*, credential: ProviderCredential, actor: Member | None) -> CheckResult:
    # Each check is an outbound request on demand: throttled per workspace and per user.
    action_throttle(
        action="provider_test",
        workspace_id=credential.workspace_id,
        user_id=actor.user_id if actor is not None else None,
    )
    try:
        url, headers = _request(credential, provider_key_reveal(credential=credential))
    except Exception:  # an undecryptable secret, a bad stored URL: report, don't 500
        result = CheckResult(False, None, UNREACHABLE)
    else:
        result = _check(url, headers)
    audit_record(
        workspace=credential.workspace,
        actor=actor,
        action="provider_key.test",
        target=credential,
        after={"ok": result.ok, "status": result.status},
    )
    return result
