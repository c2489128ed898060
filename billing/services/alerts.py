"""Alerts: recorded once (unique dedupe key per workspace), then delivered to every channel.

The gateway only signals: its scripts XADD ladder crossings and loops to the Redis stream
`alephant:alerts` (one event per budget, period and step, guarded in Redis too). `alerts_drain`
(a Celery beat task) reads the stream in the consumer group `alerts`, records each event as an
`Alert` (a duplicate event, or a second worker racing on the same crossing, inserts nothing),
and enqueues one delivery task per enabled channel on commit.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from billing.models import Alert, AlertChannel, Budget
from billing.models.alerts import AlertKind, ChannelKind
from billing.services.channel_secrets import (
    channel_secrets_open,
    channel_secrets_seal,
    new_signing_secret,
)
from billing.services.channels import DeliveryError, deliver
from core.egress import EgressPolicy, EgressRefused
from core.money import format_usd, usd_exact
from core.rediskeys import ALERTS_STREAM, alerts_streams
from workspaces.models import Member, Workspace
from workspaces.services.audit import audit_record
from workspaces.services.throttle import action_throttle
from workspaces.tenancy import workspace_scope

logger = logging.getLogger(__name__)

DELIVER_TASK = "billing.alert_deliver"  # billing.tasks.alert_deliver_task
STREAM = ALERTS_STREAM
GROUP = "alerts"


def _shown_and_exact(units: int | str, *, money: bool) -> tuple[str, str]:
    """What the message shows (the one display rule) and what `data` keeps (exact)."""
    if not money:
        return str(units), str(units)
    return format_usd(int(units)), usd_exact(int(units))


# --- recording --------------------------------------------------------------------------


def alert_record(
    *,
    workspace_id: int,
    kind: str,
    dedupe_key: str,
    title: str,
    message: str = "",
    budget: Budget | None = None,
    period_key: str = "",
    step: int | None = None,
    data: dict | None = None,
) -> Alert | None:
    """Insert the alert, or return None when this dedupe key was already recorded."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                workspace_id=workspace_id,
                kind=kind,
                dedupe_key=dedupe_key[:200],
                budget=budget,
                period_key=period_key,
                step=step,
                title=title[:300],
                message=message,
                data=data or {},
            )
    except IntegrityError:
        return None
    channel_ids = list(
        AlertChannel.objects.filter(workspace_id=workspace_id, enabled=True).values_list(
            "id", flat=True
        )
    )
    if channel_ids:
        alert.deliveries = [
            {"channel_id": cid, "status": "pending", "attempts": 0, "error": ""}
            for cid in channel_ids
        ]
        alert.save(update_fields=["deliveries"])
        transaction.on_commit(lambda: _enqueue_deliveries(workspace_id, alert.pk, channel_ids))
    return alert


def _enqueue_deliveries(workspace_id: int, alert_id: int, channel_ids: list[int]) -> None:
    # By name: billing.tasks wraps this module's services, so it cannot be imported here.
    alert_deliver_task = current_app.tasks[DELIVER_TASK]
    for channel_id in channel_ids:
        alert_deliver_task.delay(
            workspace_id=workspace_id, alert_id=alert_id, channel_id=channel_id
        )


def scope_label(budget: Budget) -> str:
    return f"{budget.scope_type} {budget.scope_id}" + (f" ({budget.name})" if budget.name else "")


def alert_from_event(event_id: str, event: dict[str, str]) -> Alert | None:
    """Record one stream event (inside its workspace scope). None: duplicate or unknown."""
    workspace_id = int(event["workspace_id"])
    kind = event.get("kind", "")
    if kind == AlertKind.LADDER:
        budget = Budget.objects.filter(
            workspace_id=workspace_id, pk=int(event["budget_id"])
        ).first()
        if budget is None:
            return None
        step = int(event["step"])
        period = event.get("period", "")
        money = budget.is_money
        spent_text, spent = _shown_and_exact(event["spent"], money=money)
        limit_text, limit = _shown_and_exact(event["limit"], money=money)
        unit = "USD" if money else budget.metric
        used = f"{spent_text} of {limit_text}" + ("" if money else f" {unit}")
        refused = event.get("refused") == "1"
        title = f"Budget {budget.pk} on {scope_label(budget)} reached {step}%"
        message = f"{used} used this {budget.period} (period {period})." + (
            " Calls are now refused (hard stop)." if refused and budget.hard_stop else ""
        )
        return alert_record(
            workspace_id=workspace_id,
            kind=kind,
            dedupe_key=f"ladder:{budget.pk}:{period}:{step}",
            title=title,
            message=message,
            budget=budget,
            period_key=period,
            step=step,
            data={"spent": spent, "limit": limit, "unit": unit, "refused": refused},
        )
    if kind == AlertKind.LOOP:
        subject = event.get("subject", "")
        what = f"agent {subject[1:]}" if subject.startswith("a") else f"session {subject[1:]}"
        return alert_record(
            workspace_id=workspace_id,
            kind=kind,
            dedupe_key=f"loop:{event_id}",
            title=f"Agent loop detected on {what}",
            message=f"The same request was sent {event.get('count')} times in a short window.",
            data={"subject": subject, "count": int(event.get("count") or 0)},
        )
    logger.warning("unknown alert event %s: %s", event_id, event)
    return None


def _decode(fields: dict) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in fields.items()
    }


def alerts_drain(*, client: redis.Redis, consumer: str, count: int = 200) -> int:
    """Record every pending alert event (every shard on a cluster); returns how many events
    were handled."""
    return sum(
        _alerts_drain_stream(client=client, stream=stream, consumer=consumer, count=count)
        for stream in alerts_streams()
    )


def _alerts_drain_stream(*, client: redis.Redis, stream: str, consumer: str, count: int) -> int:
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    handled = 0
    # Events a dead worker took but never acknowledged come back after a minute.
    claimed: Any = client.xautoclaim(stream, GROUP, consumer, min_idle_time=60_000, count=count)
    batches = [claimed[1]]
    fresh: Any = client.xreadgroup(GROUP, consumer, {stream: ">"}, count=count)
    for _stream, entries in fresh or []:
        batches.append(entries)
    for entries in batches:
        for raw_id, raw_fields in entries:
            if raw_fields is None:
                continue
            event_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            event = _decode(raw_fields)
            try:
                with workspace_scope(int(event["workspace_id"])):
                    alert_from_event(event_id, event)
            except Exception:
                # Leave it pending: it is retried (claimed again) after a minute.
                logger.exception("alert event %s failed", event_id)
                continue
            client.xack(stream, GROUP, event_id)
            handled += 1
    return handled


# --- delivery ---------------------------------------------------------------------------


def alert_deliver(
    *, workspace_id: int, alert_id: int, channel_id: int, attempt: int = 1
) -> DeliveryError | None:
    """Deliver to one channel and record the outcome; returns a retryable error, if any
    (returned, not raised, so the recorded outcome commits with the caller's scope)."""
    alert = (
        Alert.objects.select_related("budget")
        .filter(workspace_id=workspace_id, pk=alert_id)
        .first()
    )
    channel = AlertChannel.objects.filter(workspace_id=workspace_id, pk=channel_id).first()
    if alert is None or channel is None:
        return None
    error: DeliveryError | None = None
    try:
        deliver(channel, alert)
    except DeliveryError as exc:
        error = exc
    with transaction.atomic():
        locked = Alert.objects.select_for_update().get(pk=alert.pk)
        entries = [d for d in locked.deliveries if d.get("channel_id") != channel_id]
        status = "sent" if error is None else ("failed" if error.permanent else "retrying")
        entries.append(
            {
                "channel_id": channel_id,
                "kind": channel.kind,
                "status": status,
                "attempts": attempt,
                "error": "" if error is None else str(error)[:300],
            }
        )
        locked.deliveries = entries
        locked.save(update_fields=["deliveries"])
    return error if error is not None and not error.permanent else None


# --- channels ---------------------------------------------------------------------------


def _check_destination(url: str) -> None:
    """The egress policy at save time, for a clear form error (delivery checks again, pinned)."""
    try:
        EgressPolicy.from_settings(settings).check_url(url, must_resolve=False)
    except EgressRefused as exc:
        raise ValidationError({"url": str(exc)}) from exc


def alert_channel_create(
    *,
    workspace: Workspace,
    actor: Member | None,
    kind: str,
    name: str,
    url: str = "",
    emails: list[str] | None = None,
    enabled: bool = True,
) -> AlertChannel:
    if kind not in ChannelKind.values:
        raise ValidationError({"kind": f"one of {', '.join(ChannelKind.values)}"})
    if kind in (ChannelKind.SLACK, ChannelKind.WEBHOOK) and not url:
        raise ValidationError({"url": "required for slack and webhook channels"})
    if url:
        _check_destination(url)
    channel = AlertChannel(
        workspace=workspace,
        kind=kind,
        name=name.strip(),
        url=url,
        emails=emails or [],
        enabled=enabled,
    )
    channel.full_clean()
    signing_secret = new_signing_secret() if kind == ChannelKind.WEBHOOK else ""
    with transaction.atomic():
        channel_secrets_seal(
            channel=channel, url=url if kind == ChannelKind.SLACK else "", secret=signing_secret
        )
        channel.save()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="alert_channel.create",
            target=channel,
            after={"kind": kind, "name": channel.name, "url": channel.url, "enabled": enabled},
        )
    # Shown once: the create answer (API and page) reads it from this instance; the row holds
    # only the sealed copy. Nothing saves this instance again.
    channel.secret = signing_secret
    return channel


def alert_channel_update(
    *, channel: AlertChannel, actor: Member | None, **data: Any
) -> AlertChannel:
    if data.get("url"):
        _check_destination(data["url"])
    before = {k: getattr(channel, k) for k in data}
    for name in ("name", "url", "emails", "enabled"):
        if name in data:
            setattr(channel, name, data[name])
    channel.full_clean()
    with transaction.atomic():
        if "url" in data and channel.kind == ChannelKind.SLACK:
            kept = channel_secrets_open(channel=channel).secret if channel.sealed else ""
            channel_secrets_seal(channel=channel, url=data["url"], secret=kept)
        channel.save()
        audit_record(
            workspace=channel.workspace,
            actor=actor,
            action="alert_channel.update",
            target=channel,
            before=before,
            after={k: getattr(channel, k) for k in data},
        )
    return channel


def alert_channel_delete(*, channel: AlertChannel, actor: Member | None) -> None:
    with transaction.atomic():
        audit_record(
            workspace=channel.workspace,
            actor=actor,
            action="alert_channel.delete",
            target=channel,
            before={"kind": channel.kind, "name": channel.name},
        )
        channel.delete()


def alert_channel_test(*, channel: AlertChannel, actor: Member | None) -> tuple[Alert, str]:
    """Send a test alert now (synchronously, so the UI can show the result).

    Throttled per workspace and per user (RateLimited): it mails or posts on demand."""
    action_throttle(
        action="alert_test",
        workspace_id=channel.workspace_id,
        user_id=actor.user_id if actor is not None else None,
    )
    alert = Alert.objects.create(
        workspace_id=channel.workspace_id,
        kind=AlertKind.TEST,
        dedupe_key=f"test:{uuid.uuid4().hex}",
        title=f"Test alert for channel {channel.name}",
        message="This is a test alert from Alephant. If you can read it, the channel works.",
    )
    try:
        deliver(channel, alert)
        result = ""
    except DeliveryError as exc:
        result = str(exc)
    alert.deliveries = [
        {
            "channel_id": channel.pk,
            "kind": channel.kind,
            "status": "failed" if result else "sent",
            "attempts": 1,
            "error": result,
        }
    ]
    alert.save(update_fields=["deliveries"])
    audit_record(
        workspace=channel.workspace,
        actor=actor,
        action="alert_channel.test",
        target=channel,
        after={"ok": not result},
    )
    return alert, result
