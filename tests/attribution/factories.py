"""Ledger rows for attribution tests (the real `billing.UsageRecord`, inserted as the app role)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from billing.models import UsageRecord
from tests.factories import UsageRecordFactory


def usage(workspace, *, at: dt.datetime, cost: str = "0.001", **fields) -> UsageRecord:
    """A ledger row of `workspace` at `at` (request id and fingerprint unique per row)."""
    return UsageRecordFactory(workspace=workspace, cost_usd=Decimal(cost), created_at=at, **fields)
