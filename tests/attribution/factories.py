"""Ledger rows for attribution tests (the real `billing.UsageRecord`, inserted as the app role)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from billing.models import UsageRecord

_seq = itertools.count(1)


def usage(workspace, *, at: dt.datetime, cost: str = "0.001", **fields) -> UsageRecord:
    n = next(_seq)
    values = {
        "request_id": f"req-{workspace.pk}-{n}-{at.timestamp()}",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "chat.completions",
        "input_tokens": 100,
        "output_tokens": 50,
        "cost_usd": Decimal(cost),
        "created_at": at,
        "fingerprint": f"fp-{n}",
    }
    values.update(fields)
    return UsageRecord.objects.create(workspace=workspace, **values)
