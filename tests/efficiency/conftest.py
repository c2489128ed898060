"""Synthetic ledger traffic for the efficiency tests: real `billing.UsageRecord` rows."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import UsageRecord
from billing.pricing import cost_usd
from workspaces.models import Agent
from workspaces.services.workspaces import agent_create

# A Wednesday, 10:00 UTC: inside working hours (8-19, Mon-Fri) in the default UTC workspace.
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
_ids = itertools.count(1)


def fp(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Ledger:
    def __init__(self, workspace):
        self.workspace = workspace

    def call(
        self,
        *,
        member,
        agent: Agent | None = None,
        at: datetime = T0,
        model: str = "gpt-4o-mini",
        provider: str = "openai",
        prompt: str | None = None,
        input_tokens: int = 800,
        output_tokens: int = 400,
        session_id: str = "",
        status_code: int = 200,
        error_type: str = "",
        cache_hit: bool = False,
        stream: bool = False,
    ) -> UsageRecord:
        n = next(_ids)
        prompt = prompt if prompt is not None else f"unique prompt {n}"
        cost = cost_usd(provider, model, input_tokens=input_tokens, output_tokens=output_tokens)
        failed = status_code >= 400
        return UsageRecord.objects.create(
            workspace=self.workspace,
            request_id=f"req_{n:06d}",
            member=member,
            department_id=(agent.department_id if agent else member.department_id),
            agent=agent,
            session_id=session_id,
            provider=provider,
            model=model,
            endpoint="chat.completions",
            input_tokens=0 if failed else input_tokens,
            output_tokens=0 if failed else output_tokens,
            cost_usd=Decimal(0) if (cache_hit or failed) else cost,
            saved_usd=cost if cache_hit else Decimal(0),
            cache_hit=cache_hit,
            status_code=status_code,
            error_type=error_type,
            stream=stream,
            fingerprint=fp(f"{model}|{prompt}"),
            created_at=at,
        )

    def varied(self, *, member, agent=None, count=30, start=T0, session_prefix="s"):
        """A clean workload: distinct prompts, right-sized model, a few steps per session."""
        for i in range(count):
            self.call(
                member=member,
                agent=agent,
                at=start + timedelta(minutes=3 * i),
                session_id=f"{session_prefix}{i // 5}",
                input_tokens=900 + 37 * (i % 7),
                output_tokens=350 + 11 * (i % 5),
            )


# The signal and grade tests measure the maths on micro-dollar rows, so they switch the dollar
# floors off; tests/efficiency/test_finance.py puts the defaults back (`default_floors`).
MICRO_FLOORS = ("GRADE_MIN_USD", "GRADE_MIN_SHARE", "SIGNAL_MIN_USD", "SIGNAL_MIN_SHARE")


@pytest.fixture(autouse=True)
def micro_floors(settings):
    for name in MICRO_FLOORS:
        setattr(settings, f"ALEPHANT_EFF_{name}", "0")


@pytest.fixture
def default_floors(settings):
    for name in MICRO_FLOORS:
        delattr(settings, f"ALEPHANT_EFF_{name}")


@pytest.fixture
def ledger(scoped):
    return Ledger(scoped.workspace)


@pytest.fixture
def bot(scoped):
    return agent_create(
        workspace=scoped.workspace, slug="looper", name="Looper", owner=scoped.member
    )


@pytest.fixture
def helper(scoped):
    return agent_create(
        workspace=scoped.workspace, slug="helper", name="Helper", owner=scoped.admin
    )
