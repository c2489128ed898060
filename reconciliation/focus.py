"""FOCUS 1.2 export of the ledger (FinOps Open Cost and Usage Specification, v1.2).

One `Usage` row per UTC day x provider x model x gateway key x member x agent x department x
session x custom properties, straight from `billing.UsageRecord`: the sum of `BilledCost` over
the file is the ledger's `cost_usd` sum for the period, to the last stored digit (Decimal, no
rounding). Response-cache savings are their own rows (`ChargeCategory=Credit`, every cost
column 0, the avoided amount in `x_CacheSavedCost`): never netted into usage.

Columns: the 21 columns FOCUS 1.2 marks Mandatory, then the Conditional/Recommended ones that
apply to metered AI usage, then `x_`-prefixed extension columns (the spec's rule for custom
columns). Our dimensions ride in `Tags` (JSON, keys prefixed `alephant/`), and as ids in `x_`
columns so every row traces back to ledger rows. Costs are priced by the gateway at the
workspace's rate (catalog, or the workspace's negotiated override), so ListCost, ContractedCost,
EffectiveCost and BilledCost carry the same amount; unit prices are left out (one row mixes
input and output tokens, which have different unit prices).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate

from billing.models import UsageRecord
from core.money import usd_exact
from core.periods import calendar_period
from gateway.models import GatewayKey
from workspaces.models import Agent, Department, Member, Workspace

FOCUS_VERSION = "1.2"

MANDATORY = [
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart", "ChargeCategory", "ChargeClass",
    "ChargeDescription", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost",
    "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity", "PricingUnit",
    "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
]  # fmt: skip
CONDITIONAL = [
    "ChargeFrequency", "ConsumedQuantity", "ConsumedUnit", "PricingCategory", "ResourceId",
    "ResourceName", "ResourceType", "ServiceSubcategory", "SkuId", "SkuPriceId",
    "SubAccountId", "SubAccountName", "Tags",
]  # fmt: skip
EXTENSIONS = [
    "x_Provider", "x_Model", "x_GatewayKeyId", "x_MemberId", "x_AgentId", "x_DepartmentId",
    "x_SessionId", "x_Requests", "x_InputTokens", "x_CachedTokens", "x_OutputTokens",
    "x_CacheSavedCost", "x_FocusVersion",
]  # fmt: skip
COLUMNS = MANDATORY + CONDITIONAL + EXTENSIONS

PROVIDER_NAMES = {
    "openai": ("OpenAI", "OpenAI API"),
    "anthropic": ("Anthropic", "Claude API"),
    "gemini": ("Google", "Gemini API"),
    "azure-openai": ("Microsoft", "Azure OpenAI"),
}
SERVICE_CATEGORY = "AI and Machine Learning"
SERVICE_SUBCATEGORY = "Generative AI"
ZERO = Decimal(0)
GROUP = [
    "day", "provider", "model", "gateway_key_id", "member_id", "agent_id", "department_id",
    "session_id", "properties",
]  # fmt: skip


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _month(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    first, following = calendar_period("month", day)
    return _midnight(first), _midnight(following)


def _text(value: str) -> str:
    """Free text a person typed (names, sessions): a leading = + - @ would run as a formula in
    a spreadsheet, so it is quoted the way `workspaces.tables` quotes CSV cells."""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _amount(value: Decimal) -> str:
    return usd_exact(value)  # every stored digit, trailing zeros trimmed, no exponent


def ledger_groups(*, workspace: Workspace, since: dt.date, until: dt.date):
    """The ledger folded to the export's grain, UTC days `since`..`until` inclusive."""
    return (
        UsageRecord.objects.filter(
            workspace=workspace,
            created_at__gte=_midnight(since),
            created_at__lt=_midnight(until + dt.timedelta(days=1)),
        )
        .annotate(day=TruncDate("created_at", tzinfo=dt.UTC))
        .values(*GROUP)
        .annotate(
            cost=Sum("cost_usd"),
            saved=Sum("saved_usd"),
            requests=Count("id"),
            input_tokens=Sum("input_tokens"),
            cached_tokens=Sum("cached_tokens"),
            output_tokens=Sum("output_tokens"),
        )
        .order_by("day", "provider", "model", "gateway_key_id", "member_id", "agent_id")
    )


def _names(workspace: Workspace) -> dict[str, dict[int, str]]:
    return {
        "member": {
            m.pk: m.user.email
            for m in Member.objects.filter(workspace=workspace).select_related("user")
        },
        "agent": dict(Agent.objects.filter(workspace=workspace).values_list("id", "name")),
        "department": dict(
            Department.objects.filter(workspace=workspace).values_list("id", "name")
        ),
        "key": dict(GatewayKey.objects.filter(workspace=workspace).values_list("id", "name")),
    }


def _tags(group: dict, names: dict[str, dict[int, str]]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for dim, field in (
        ("department", "department_id"),
        ("member", "member_id"),
        ("agent", "agent_id"),
        ("key", "gateway_key_id"),
    ):
        if group[field] is not None:
            tags[f"alephant/{dim}"] = names[dim].get(group[field], f"#{group[field]}")
    if group["session_id"]:
        tags["alephant/session"] = group["session_id"]
    for name, value in sorted((group["properties"] or {}).items()):
        tags[f"alephant/property/{name}"] = str(value)
    return tags


def _row(group: dict, workspace: Workspace, names: dict, *, credit: bool) -> dict[str, str]:
    provider, model, day = group["provider"], group["model"], group["day"]
    provider_name, service = PROVIDER_NAMES.get(provider, (provider, provider))
    period_start, period_end = _month(day)
    tokens = (group["input_tokens"] or 0) + (group["output_tokens"] or 0)
    cost = ZERO if credit else (group["cost"] or ZERO)
    key_id = group["gateway_key_id"]
    row = dict.fromkeys(COLUMNS, "")
    row.update(
        BilledCost=_amount(cost), EffectiveCost=_amount(cost), ListCost=_amount(cost),
        ContractedCost=_amount(cost), BillingCurrency="USD",
        BillingAccountId=f"alephant-workspace-{workspace.pk}",
        BillingAccountName=_text(workspace.name),
        BillingPeriodStart=_iso(period_start), BillingPeriodEnd=_iso(period_end),
        ChargePeriodStart=_iso(_midnight(day)),
        ChargePeriodEnd=_iso(_midnight(day + dt.timedelta(days=1))),
        ChargeCategory="Credit" if credit else "Usage", ChargeFrequency="Usage-Based",
        ChargeDescription=(
            f"Response-cache savings on {model} (not billed)" if credit
            else f"{model} tokens via {service}"
        ),
        InvoiceIssuerName=provider_name, ProviderName=provider_name, PublisherName=provider_name,
        ServiceName=service, ServiceCategory=SERVICE_CATEGORY,
        ServiceSubcategory=SERVICE_SUBCATEGORY,
        SkuId=f"{provider}/{model}", SkuPriceId=f"{provider}/{model}",
        ResourceId=f"alephant-gateway-key-{key_id}" if key_id else "",
        ResourceName=_text(names["key"].get(key_id, "")) if key_id else "",
        ResourceType="Gateway key" if key_id else "",
        SubAccountId=f"alephant-department-{group['department_id']}"
        if group["department_id"] else "",
        SubAccountName=_text(names["department"].get(group["department_id"], ""))
        if group["department_id"] else "",
        Tags=json.dumps(_tags(group, names), sort_keys=True, ensure_ascii=False),
        x_Provider=provider, x_Model=model, x_GatewayKeyId=str(key_id or ""),
        x_MemberId=str(group["member_id"] or ""), x_AgentId=str(group["agent_id"] or ""),
        x_DepartmentId=str(group["department_id"] or ""),
        x_SessionId=_text(group["session_id"] or ""),
        x_Requests=str(group["requests"]), x_InputTokens=str(group["input_tokens"] or 0),
        x_CachedTokens=str(group["cached_tokens"] or 0),
        x_OutputTokens=str(group["output_tokens"] or 0),
        x_CacheSavedCost=_amount(group["saved"] or ZERO), x_FocusVersion=FOCUS_VERSION,
    )  # fmt: skip
    if not credit:  # quantities describe usage; a credit row carries none (spec: null)
        row.update(
            PricingQuantity=str(tokens), PricingUnit="Tokens", PricingCategory="Standard",
            ConsumedQuantity=str(tokens), ConsumedUnit="Tokens",
        )  # fmt: skip
    return row


def focus_rows(*, workspace: Workspace, since: dt.date, until: dt.date) -> Iterator[dict]:
    names = _names(workspace)
    for group in ledger_groups(workspace=workspace, since=since, until=until):
        yield _row(group, workspace, names, credit=False)
        if (group["saved"] or ZERO) > 0:
            yield _row(group, workspace, names, credit=True)


def focus_csv(rows: Iterable[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return buffer.getvalue()
