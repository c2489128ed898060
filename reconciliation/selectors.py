"""Reads: the comparison of the provider's figures with the ledger, per UTC day, provider and
model (providers bucket by UTC day, so the ledger is cut the same way, whatever the workspace's
own time zone)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.models import UsageRecord
from core.pricing import UnpricedModel, cost_usd
from gateway.models import ProviderCredential
from reconciliation.models import (
    AdminCredential,
    AdminProvider,
    LineKind,
    ProviderCostLine,
    ProviderDay,
    ProviderKeyLink,
    ReconciliationPolicy,
)
from workspaces.models import Workspace

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def policy_for(*, workspace: Workspace) -> ReconciliationPolicy:
    """The workspace's thresholds, or the defaults (unsaved) when it never set any."""
    return ReconciliationPolicy.objects.filter(workspace=workspace).first() or (
        ReconciliationPolicy(workspace=workspace)
    )


def admin_credentials(*, workspace: Workspace) -> list[AdminCredential]:
    return list(AdminCredential.objects.filter(workspace=workspace).order_by("provider"))


@dataclass
class Figures:
    cost: Decimal = ZERO
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    def add(self, other: Figures) -> None:
        self.cost += other.cost
        self.input_tokens += other.input_tokens
        self.cached_tokens += other.cached_tokens
        self.output_tokens += other.output_tokens
        self.requests += other.requests


def capture_rate(*, ledger: Decimal, provider: Decimal) -> Decimal | None:
    """Share of the provider's cost the ledger saw, in percent (exact); None with no charge."""
    if provider == 0:
        return None if ledger == 0 else HUNDRED
    return ledger * HUNDRED / provider


@dataclass
class Comparison:
    day: dt.date
    provider: str
    model: str
    reported: bool  # the provider has answered for this day
    theirs: Figures = field(default_factory=Figures)
    ours: Figures = field(default_factory=Figures)
    models: list[Comparison] = field(default_factory=list)  # per_day rows: the day's models

    @property
    def difference(self) -> Decimal:
        """Provider cost minus ledger cost: positive is spend the gateway did not see."""
        return self.theirs.cost - self.ours.cost

    @property
    def capture_rate(self) -> Decimal | None:
        return capture_rate(ledger=self.ours.cost, provider=self.theirs.cost)

    @property
    def input_difference(self) -> int:
        return self.theirs.input_tokens - self.ours.input_tokens

    @property
    def output_difference(self) -> int:
        return self.theirs.output_tokens - self.ours.output_tokens

    @property
    def cached_difference(self) -> int:
        return self.theirs.cached_tokens - self.ours.cached_tokens


def _ledger(workspace: Workspace, providers: list[str], since: dt.date, until: dt.date):
    start = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(until + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    # A response-cache hit never reached the provider: its tokens are not on the bill.
    billed = Q(cache_hit=False, status_code__lt=400)
    return (
        UsageRecord.objects.filter(
            workspace=workspace, provider__in=providers, created_at__gte=start, created_at__lt=end
        )
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values("day", "provider", "model")
        .annotate(
            cost=Sum("cost_usd"),
            input_tokens=Sum("input_tokens", filter=billed),
            cached_tokens=Sum("cached_tokens", filter=billed),
            output_tokens=Sum("output_tokens", filter=billed),
            requests=Count("id", filter=billed),
        )
    )


def _figures(row: Mapping[str, Any]) -> Figures:
    return Figures(
        cost=row.get("cost") or ZERO,
        input_tokens=row.get("input_tokens") or 0,
        cached_tokens=row.get("cached_tokens") or 0,
        output_tokens=row.get("output_tokens") or 0,
        requests=row.get("requests") or 0,
    )


def comparison(
    *, workspace: Workspace, since: dt.date, until: dt.date, provider: str | None = None
) -> list[Comparison]:
    """One row per UTC day, provider and model that either side has figures for."""
    providers = (
        [provider] if provider else [c.provider for c in admin_credentials(workspace=workspace)]
    )
    reported = {
        (d.day, d.provider): d.reported
        for d in ProviderDay.objects.filter(
            workspace=workspace, provider__in=providers, day__gte=since, day__lte=until
        )
    }
    rows: dict[tuple, Comparison] = {}

    def row(day: dt.date, prov: str, model: str) -> Comparison:
        key = (day, prov, model)
        if key not in rows:
            rows[key] = Comparison(day, prov, model, reported.get((day, prov), False))
        return rows[key]

    lines = ProviderCostLine.objects.filter(
        workspace=workspace, provider__in=providers, day__gte=since, day__lte=until
    ).values("day", "provider", "model", "kind")
    for line in lines.annotate(
        cost=Sum("cost_usd"),
        input_tokens=Sum("input_tokens"),
        cached_tokens=Sum("cached_tokens"),
        output_tokens=Sum("output_tokens"),
        requests=Sum("requests"),
    ):
        figures = _figures(line)
        if line["kind"] == LineKind.COST:
            row(line["day"], line["provider"], line["model"]).theirs.cost += figures.cost
        else:
            figures.cost = ZERO
            row(line["day"], line["provider"], line["model"]).theirs.add(figures)
    for ledger_row in _ledger(workspace, providers, since, until):
        row(ledger_row["day"], ledger_row["provider"], ledger_row["model"]).ours.add(
            _figures(ledger_row)
        )
    return sorted(rows.values(), key=lambda r: (r.day, r.provider, r.model))


def per_day(rows: list[Comparison]) -> list[Comparison]:
    """The same rows folded to one per day and provider (`model` is empty)."""
    days: dict[tuple, Comparison] = {}
    for r in rows:
        total = days.setdefault((r.day, r.provider), Comparison(r.day, r.provider, "", r.reported))
        total.theirs.add(r.theirs)
        total.ours.add(r.ours)
    return sorted(days.values(), key=lambda r: (r.day, r.provider))


def totals(rows: list[Comparison]) -> Comparison:
    total = Comparison(dt.date.min, "", "", all(r.reported for r in rows))
    for r in rows:
        total.theirs.add(r.theirs)
        total.ours.add(r.ours)
    return total


def provider_keys_behind(
    *, workspace: Workspace, provider: str, day: dt.date, model: str
) -> list[ProviderCostLine]:
    """The provider's usage per its own key id (and cost lines per project) for a day+model."""
    return list(
        ProviderCostLine.objects.filter(
            workspace=workspace, provider=provider, day=day, model=model
        ).order_by("kind", "key_id", "line_item")
    )


def requests_behind(
    *, workspace: Workspace, provider: str, day: dt.date, model: str
) -> QuerySet[UsageRecord]:
    """The ledger rows behind one day+model of the comparison, newest first."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return UsageRecord.objects.filter(
        workspace=workspace,
        provider=provider,
        model=model,
        created_at__gte=start,
        created_at__lt=start + dt.timedelta(days=1),
    ).order_by("-created_at", "-id")


def daily_breakdown(rows: list[Comparison]) -> dict[dt.date, list[Comparison]]:
    grouped: dict[dt.date, list[Comparison]] = defaultdict(list)
    for r in rows:
        grouped[r.day].append(r)
    return grouped


@dataclass
class KeyComparison:
    """One provider key on one day+model: the provider's usage under its key id against the
    ledger's calls through the credential linked to it. The provider's usage API carries tokens,
    not cost, so both sides are priced at the catalog price for a like-for-like capture rate."""

    key_id: str  # the provider's id; empty when our credential has no link yet
    credential: str  # our credential's name; empty when the key is not one of ours
    theirs: Figures = field(default_factory=Figures)
    ours: Figures = field(default_factory=Figures)
    ledger_cost: Decimal = ZERO  # what the ledger actually charged (overrides included)

    @property
    def capture_rate(self) -> Decimal | None:
        return capture_rate(ledger=self.ours.cost, provider=self.theirs.cost)

    @property
    def difference(self) -> Decimal:
        return self.theirs.cost - self.ours.cost


def _priced(provider: str, model: str, figures: Figures) -> Figures:
    try:
        figures.cost = cost_usd(
            provider,
            model,
            input_tokens=figures.input_tokens,
            output_tokens=figures.output_tokens,
            cached_tokens=figures.cached_tokens,
        )
    except UnpricedModel:
        figures.cost = ZERO
    return figures


def per_key(
    *, workspace: Workspace, provider: str, day: dt.date, model: str
) -> list[KeyComparison]:
    """The day+model split per provider key (only where the provider reports usage per key)."""
    credentials = {c.pk: c.name for c in ProviderCredential.objects.filter(workspace=workspace)}
    linked = {
        link.credential_id: link.provider_key_id
        for link in ProviderKeyLink.objects.filter(workspace=workspace)
    }
    rows: dict[str, KeyComparison] = {}
    owner = {key_id: credentials.get(pk, "") for pk, key_id in linked.items()}
    usage = ProviderCostLine.objects.filter(
        workspace=workspace, provider=provider, day=day, model=model, kind=LineKind.USAGE
    ).exclude(key_id="")
    for line in usage.values("key_id").annotate(
        input_tokens=Sum("input_tokens"),
        cached_tokens=Sum("cached_tokens"),
        output_tokens=Sum("output_tokens"),
        requests=Sum("requests"),
    ):
        row = rows.setdefault(
            line["key_id"], KeyComparison(line["key_id"], owner.get(line["key_id"], ""))
        )
        row.theirs.add(_priced(provider, model, _figures({**line, "cost": None})))
    for mine in _ledger_per_credential(workspace, provider, day, model):
        pk = mine["provider_credential"]
        key_id = linked.get(pk, "")
        # An unlinked credential gets its own row, named, so the admin sees what to link.
        slot = key_id or f"credential:{pk}"
        row = rows.setdefault(slot, KeyComparison(key_id, credentials.get(pk, "")))
        row.ours.add(_priced(provider, model, _figures({**mine, "cost": None})))
        row.ledger_cost += mine["cost"] or ZERO
    return sorted(rows.values(), key=lambda r: (-r.theirs.cost, r.key_id, r.credential))


def _ledger_per_credential(workspace: Workspace, provider: str, day: dt.date, model: str):
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    billed = Q(cache_hit=False, status_code__lt=400)
    return (
        UsageRecord.objects.filter(
            workspace=workspace,
            provider=provider,
            model=model,
            created_at__gte=start,
            created_at__lt=start + dt.timedelta(days=1),
        )
        .values("provider_credential")
        .annotate(
            cost=Sum("cost_usd"),
            input_tokens=Sum("input_tokens", filter=billed),
            cached_tokens=Sum("cached_tokens", filter=billed),
            output_tokens=Sum("output_tokens", filter=billed),
            requests=Count("id", filter=billed),
        )
    )


def key_links(*, workspace: Workspace) -> list[dict]:
    """Our call keys with the provider key id each is linked to (blank: not linked)."""
    linked = {
        link.credential_id: link.provider_key_id
        for link in ProviderKeyLink.objects.filter(workspace=workspace)
    }
    return [
        {"credential": c, "provider_key_id": linked.get(c.pk, "")}
        for c in ProviderCredential.objects.filter(
            workspace=workspace, provider__in=AdminProvider.values
        ).order_by("provider", "name")
    ]
