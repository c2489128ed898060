"""Billing models, one module per concern (the ledger, prices; budgets land beside them)."""

from billing.models.alerts import Alert, AlertChannel
from billing.models.archive import LedgerArchive
from billing.models.budgets import Budget, GuardrailSettings
from billing.models.ledger import UsageRecord
from billing.models.prices import PriceOverride
from billing.models.reports import ReportCadence, SpendReport
from billing.models.requests import BudgetRequest, BudgetTopUp, RequestStatus, SignedLinkUse

__all__ = [
    "Alert",
    "AlertChannel",
    "Budget",
    "BudgetRequest",
    "BudgetTopUp",
    "GuardrailSettings",
    "LedgerArchive",
    "PriceOverride",
    "ReportCadence",
    "RequestStatus",
    "SignedLinkUse",
    "SpendReport",
    "UsageRecord",
]
