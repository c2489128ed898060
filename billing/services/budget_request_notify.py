"""Approvers hear of a new budget request in the workspace's alert channels.

Slack and email carry approve / deny links: signed (`django.core.signing`, salted), expiring
(`ALEPHANT_REQUEST_LINK_MAX_AGE_S`, default 3 days) and single use (`SignedLinkUse`: the nonce is
recorded when the link is used; a second use finds it). A link opens a confirmation page and acts
on POST, so a chat unfurler or mail scanner fetching it decides nothing. Email goes to owners,
admins and finance but never to the requester (who must not approve their own request); a webhook
gets the request JSON, signed like alerts. Everything that needs the database is prepared inside
the transaction; sending happens after commit, and a failed send is logged, not retried.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from billing.models import AlertChannel, BudgetRequest, SignedLinkUse
from billing.models.alerts import ChannelKind
from billing.services.channel_secrets import channel_secrets_open
from billing.services.channels import SIGNATURE_HEADER, DeliveryError, _post, sign
from core.money import format_usd
from core.vault import VaultError
from workspaces.models import SPEND_READER_ROLES, Member

logger = logging.getLogger(__name__)
LINK_SALT = "alephant.budget-request-link"


def budget_request_summary(request: BudgetRequest) -> dict:
    return {
        "id": request.pk,
        "budget_id": request.budget_id,
        "requested_by": request.requested_by_id,
        "amount_usd": str(request.amount_usd),
        "approved_usd": None if request.approved_usd is None else str(request.approved_usd),
        "reason": request.reason,
        "until": request.until.isoformat(),
        "status": request.status,
        "decided_by": request.decided_by_id,
        "decision_reason": request.decision_reason,
    }


# --- signed links ---------------------------------------------------------------------------


def link_max_age() -> int:
    return int(getattr(settings, "ALEPHANT_REQUEST_LINK_MAX_AGE_S", 3 * 86400))


def link_token(*, request: BudgetRequest, action: str) -> str:
    payload = {"w": request.workspace_id, "r": request.pk, "a": action, "n": secrets.token_hex(16)}
    return signing.dumps(payload, salt=LINK_SALT)


def link_read(token: str) -> dict:
    """The link's payload; raises `signing.BadSignature` (or `SignatureExpired`)."""
    return signing.loads(token, salt=LINK_SALT, max_age=link_max_age())


def link_url(token: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/budget-requests/link/{token}/"


def link_consume(*, request: BudgetRequest, nonce: str) -> bool:
    """Record the link as used; False when it was used already."""
    try:
        with transaction.atomic():
            SignedLinkUse.objects.create(
                workspace_id=request.workspace_id, request=request, nonce=nonce[:64]
            )
    except IntegrityError:
        return False
    return True


# --- notification ---------------------------------------------------------------------------


def _text(request: BudgetRequest) -> str:
    who = request.requested_by.user.email if request.requested_by else "someone"
    return (
        f"{who} asks for +{format_usd(request.amount_usd)} on budget {request.budget_id} "
        f"({request.budget.scope_type} {request.budget.scope_id}) until "
        f"{request.until:%Y-%m-%d %H:%M} UTC: {request.reason}"
    )


def _approver_emails(channel: AlertChannel, request: BudgetRequest) -> list[str]:
    members = Member.objects.filter(
        workspace_id=request.workspace_id, role__in=list(SPEND_READER_ROLES)
    ).select_related("user")
    emails = {m.user.email for m in members if m.pk != request.requested_by_id}
    emails.update(e for e in channel.emails or [] if isinstance(e, str) and "@" in e)
    if request.requested_by is not None:
        emails.discard(request.requested_by.user.email)
    return sorted(e for e in emails if e)


def _job(channel: AlertChannel, request: BudgetRequest) -> Callable[[], None] | None:
    text = _text(request)
    links = (
        f"Approve: {link_url(link_token(request=request, action='approve'))}\n"
        f"Deny: {link_url(link_token(request=request, action='deny'))}"
    )
    title = f"Budget request {request.pk}"
    if channel.kind == ChannelKind.EMAIL:
        to = _approver_emails(channel, request)
        if not to:
            return None
        subject, message = f"[Alephant] {title}", f"{text}\n\n{links}"

        def send_email() -> None:
            send_mail(subject, message, None, to)

        return send_email
    opened = channel_secrets_open(channel=channel)
    if channel.kind == ChannelKind.SLACK:
        body = json.dumps({"text": f"*{title}*\n{text}\n{links}"}).encode()
        return lambda: _post(opened.url, body, {"Content-Type": "application/json"})
    body = json.dumps(
        {"type": "budget_request.created", "request": budget_request_summary(request)},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "Alephant-Event": "budget_request.created",
        SIGNATURE_HEADER: sign(opened.secret, body, int(time.time())),
    }
    return lambda: _post(opened.url, body, headers)


def budget_request_notify_on_commit(request: BudgetRequest) -> None:
    jobs = []
    for channel in AlertChannel.objects.filter(workspace_id=request.workspace_id, enabled=True):
        try:
            job = _job(channel, request)
        except VaultError:
            logger.warning("channel %s: stored credentials cannot be decrypted", channel.pk)
            continue
        if job is not None:
            jobs.append((channel.pk, job))

    def send() -> None:
        for channel_id, job in jobs:
            try:
                job()
            except (DeliveryError, OSError) as exc:
                logger.warning("budget request %s to channel %s: %s", request.pk, channel_id, exc)

    transaction.on_commit(send)
