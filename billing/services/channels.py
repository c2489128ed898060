"""Alert delivery: email, Slack incoming webhook, generic webhook signed with HMAC-SHA256.

A webhook receiver verifies `Alephant-Signature: t=<unix seconds>,v1=<hex>` where
`v1 = HMAC-SHA256(channel secret, "<t>." + raw body)`, and rejects an old `t` (replays).
Errors say whether a retry can help (`DeliveryError.permanent`), like healthchecks' transports.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx
from django.conf import settings
from django.core.mail import send_mail

from billing.models import Alert, AlertChannel, Budget
from billing.models.alerts import ChannelKind
from billing.services.channel_secrets import ChannelSecrets, channel_secrets_open
from core.egress import EgressPolicy, EgressRefused
from core.egress_http import egress_client
from core.vault import VaultError
from gateway.models import GatewayKey
from workspaces.models import SPEND_READER_ROLES, Agent, Member

TIMEOUT = httpx.Timeout(5.0, connect=3.0)
SIGNATURE_HEADER = "Alephant-Signature"


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def check_url(url: str) -> None:
    """Vet a channel URL against the egress policy now (delivery checks again, pinned)."""
    try:
        EgressPolicy.from_settings(settings).check_url(url)
    except EgressRefused as exc:
        raise DeliveryError(str(exc), permanent=True) from exc


def alert_payload(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "type": f"alert.{alert.kind}",
        "workspace_id": alert.workspace_id,
        "budget_id": alert.budget_id,
        "period": alert.period_key or None,
        "step": alert.step,
        "title": alert.title,
        "message": alert.message,
        "data": alert.data,
        "created_at": alert.created_at.isoformat(),
    }


def email_recipients(channel: AlertChannel, alert: Alert) -> list[str]:
    members = Member.objects.filter(
        workspace_id=channel.workspace_id, role__in=list(SPEND_READER_ROLES)
    ).select_related("user")
    emails = {m.user.email for m in members}
    budget: Budget | None = alert.budget
    member_id = None
    if budget is not None and budget.scope_type == "member":
        member_id = budget.scope_id
    elif budget is not None and budget.scope_type == "agent":
        member_id = (
            Agent.objects.filter(workspace_id=channel.workspace_id, pk=budget.scope_id)
            .values_list("owner_id", flat=True)
            .first()
        )
    elif budget is not None and budget.scope_type == "key":
        key = GatewayKey.objects.filter(
            workspace_id=channel.workspace_id, pk=budget.scope_id
        ).first()
        member_id = key.member_id if key is not None else None
    if member_id is not None:
        member = Member.objects.filter(workspace_id=channel.workspace_id, pk=member_id).first()
        if member is not None:
            emails.add(member.user.email)
    emails.update(e for e in channel.emails or [] if isinstance(e, str) and "@" in e)
    return sorted(emails)


def _post(url: str, body: bytes, headers: dict[str, str]) -> None:
    # Resolve once, vet, connect to that address (no second lookup to rebind), no redirects.
    policy = EgressPolicy.from_settings(settings)
    try:
        with egress_client(policy, timeout=TIMEOUT) as client:
            response = client.post(url, content=body, headers=headers)
    except EgressRefused as exc:
        raise DeliveryError(str(exc), permanent=True) from exc
    except httpx.HTTPError as exc:
        # The exception text can carry the URL (a Slack URL is a credential): name the class only.
        raise DeliveryError(f"could not deliver ({type(exc).__name__})") from exc
    if response.status_code >= 300:
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
        raise DeliveryError(f"HTTP {response.status_code}", permanent=permanent)


def _opened(channel: AlertChannel) -> ChannelSecrets:
    try:
        return channel_secrets_open(channel=channel)
    except VaultError as exc:
        raise DeliveryError("the channel's stored credentials cannot be decrypted") from exc


def deliver(channel: AlertChannel, alert: Alert) -> None:
    """Send one alert to one channel; raises DeliveryError."""
    if channel.kind == ChannelKind.EMAIL:
        recipients = email_recipients(channel, alert)
        if not recipients:
            raise DeliveryError("no recipients", permanent=True)
        try:
            send_mail(
                subject=f"[Alephant] {alert.title}",
                message=f"{alert.message}\n\n{settings.SITE_URL}/",
                from_email=None,
                recipient_list=recipients,
            )
        except OSError as exc:
            raise DeliveryError(f"email: {exc}") from exc
    elif channel.kind == ChannelKind.SLACK:
        body = json.dumps({"text": f"*{alert.title}*\n{alert.message}"}).encode()
        _post(_opened(channel).url, body, {"Content-Type": "application/json"})
    elif channel.kind == ChannelKind.WEBHOOK:
        opened = _opened(channel)
        body = json.dumps(alert_payload(alert), separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "Alephant-Event": f"alert.{alert.kind}",
            SIGNATURE_HEADER: sign(opened.secret, body, int(time.time())),
        }
        _post(opened.url, body, headers)
    else:
        raise DeliveryError(f"unknown channel kind {channel.kind!r}", permanent=True)


def deliver_report(channel: AlertChannel, *, title: str, text: str, payload: dict) -> None:
    """Send a scheduled report to a Slack or webhook channel (email goes out once, to the
    report's own recipients); raises DeliveryError."""
    if channel.kind == ChannelKind.SLACK:
        body = json.dumps({"text": f"*{title}*\n{text}"}).encode()
        _post(_opened(channel).url, body, {"Content-Type": "application/json"})
    elif channel.kind == ChannelKind.WEBHOOK:
        opened = _opened(channel)
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            "Alephant-Event": str(payload.get("type", "report")),
            SIGNATURE_HEADER: sign(opened.secret, body, int(time.time())),
        }
        _post(opened.url, body, headers)
