"""The pull over real HTTP against the simulator's admin APIs: paging, late data re-pulled,
missing days, drift, uncaptured spend, alerts. Ledger rows come from the factory here; the
end-to-end test through the gateway is test_e2e.py."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing.models import Alert
from core.pricing import cost_usd
from reconciliation import selectors
from reconciliation.models import ProviderCostLine, ProviderDay, ReconciliationPolicy
from reconciliation.services.credentials import admin_credential_set
from reconciliation.services.pull import provider_costs_pull
from tests.cast import build_cast
from tests.factories import UsageRecordFactory
from tests.reconciliation.conftest import (
    ANTHROPIC_CALL_KEY,
    OPENAI_ADMIN,
    OPENAI_CALL_KEY,
    add_admin_keys,
)
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db
TODAY = dt.datetime.now(dt.UTC).date()


def _at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def _ledger(ws, *, day, provider="openai", model="gpt-4o-mini", inp=1000, out=200, cached=0):
    cost = cost_usd(provider, model, input_tokens=inp, output_tokens=out, cached_tokens=cached)
    UsageRecordFactory(
        workspace=ws, provider=provider, model=model, input_tokens=inp, output_tokens=out,
        cached_tokens=cached, cost_usd=cost, created_at=_at(day),
    )  # fmt: skip
    return cost


def _billed(sim, *, day, provider="openai", model="gpt-4o-mini", inp=1000, out=200, cached=0):
    secret = OPENAI_CALL_KEY if provider == "openai" else ANTHROPIC_CALL_KEY
    sim.outside_call(
        provider=provider, secret=secret, model=model, day=day.isoformat(),
        input_tokens=inp, output_tokens=out, cached_tokens=cached,
    )  # fmt: skip
    return cost_usd(provider, model, input_tokens=inp, output_tokens=out, cached_tokens=cached)


@pytest.fixture
def ws(sim):
    cast = build_cast()
    add_admin_keys(cast.workspace, sim.url)
    return cast.workspace


def _rows(ws, provider, since, until):
    return selectors.comparison(workspace=ws, since=since, until=until, provider=provider)


def test_full_capture_over_several_pages(ws, sim):
    sim.knobs(page_size=1)  # one bucket per page: 5 days = 5 pages per endpoint
    days = [TODAY - dt.timedelta(days=i) for i in range(5)]
    with workspace_scope(ws.pk):
        for i, day in enumerate(days):
            _ledger(ws, day=day, inp=1000 + i, out=200 + i, cached=i * 10)
            _billed(sim, day=day, inp=1000 + i, out=200 + i, cached=i * 10)
        result = provider_costs_pull(workspace=ws, provider="openai", days=5)
        assert result.error == "" and result.days_reported == 5
        rows = _rows(ws, "openai", days[-1], TODAY)
    assert len(rows) == 5
    for row in rows:
        assert row.reported and row.theirs.cost == row.ours.cost > 0
        assert row.capture_rate == 100 and row.difference == 0
        assert (row.input_difference, row.output_difference, row.cached_difference) == (0, 0, 0)
    # Every page was read: the admin key went to the admin endpoints 2 x 5 times.
    assert sim.stats()  # reachable
    with workspace_scope(ws.pk):
        assert not Alert.objects.filter(workspace=ws, kind="reconciliation").exists()


def test_uncaptured_spend_is_the_exact_shortfall_and_alerts(ws, sim):
    with workspace_scope(ws.pk):
        ours = _ledger(ws, day=TODAY, inp=5000, out=1000)
        theirs = _billed(sim, day=TODAY, inp=5000, out=1000)
        # A call made with the same key around Alephant: on the bill, not in the ledger.
        outside = _billed(sim, day=TODAY, model="gpt-4o", inp=800, out=400)
        provider_costs_pull(workspace=ws, provider="openai", days=1)
        rows = _rows(ws, "openai", TODAY, TODAY)
        [day] = selectors.per_day(rows)
        assert day.theirs.cost == theirs + outside and day.ours.cost == ours
        assert day.difference == outside
        assert day.capture_rate == ours * 100 / (theirs + outside) < 98
        [gpt4o] = [r for r in rows if r.model == "gpt-4o"]
        assert gpt4o.ours.cost == 0 and gpt4o.theirs.input_tokens == 800
        [alert] = Alert.objects.filter(
            workspace=ws, kind="reconciliation", dedupe_key__contains="capture"
        )
        assert alert.data["difference_usd"] == f"{outside:f}".rstrip("0")
        # Re-pulling the same day does not alert twice.
        provider_costs_pull(workspace=ws, provider="openai", days=1)
        assert Alert.objects.filter(workspace=ws, dedupe_key__contains="capture").count() == 1


def test_late_data_is_re_pulled_and_missing_days_are_not_uncaptured(ws, sim):
    yesterday = TODAY - dt.timedelta(days=1)
    with workspace_scope(ws.pk):
        cost = _ledger(ws, day=yesterday, provider="anthropic", model="claude-3-5-haiku-latest")
        sim.knobs(hold=True, missing_days=[TODAY.isoformat()])
        _billed(sim, day=yesterday, provider="anthropic", model="claude-3-5-haiku-latest")
        provider_costs_pull(workspace=ws, provider="anthropic", days=2)
        [row] = _rows(ws, "anthropic", yesterday, yesterday)
        assert row.reported and row.theirs.cost == 0 and row.ours.cost == cost  # not billed yet
        assert not ProviderDay.objects.get(workspace=ws, provider="anthropic", day=TODAY).reported
        sim.release()  # the provider finishes billing yesterday
        provider_costs_pull(workspace=ws, provider="anthropic", days=2)
        [row] = _rows(ws, "anthropic", yesterday, yesterday)
        assert row.theirs.cost == row.ours.cost == cost and row.capture_rate == 100
        assert row.theirs.input_tokens == row.ours.input_tokens
        # Replaced, not added: one set of lines per day however often it is pulled.
        assert (
            ProviderCostLine.objects.filter(workspace=ws, day=yesterday, kind="usage").count() == 1
        )


def test_drift_over_the_limit_alerts(ws, sim):
    with workspace_scope(ws.pk):
        ReconciliationPolicy.objects.create(
            workspace=ws, capture_threshold_pct=Decimal("50"), drift_limit_usd=Decimal("0.001")
        )
        ours = _ledger(ws, day=TODAY, inp=200_000, out=100_000)
        _billed(sim, day=TODAY, inp=200_000, out=100_000)
        sim.knobs(drift_pct="10")  # the provider bills 10 % more than the catalog price
        provider_costs_pull(workspace=ws, provider="openai", days=1)
        [row] = _rows(ws, "openai", TODAY, TODAY)
        assert row.theirs.cost == ours * Decimal("1.1") and row.difference == ours * Decimal("0.1")
        kinds = set(Alert.objects.filter(workspace=ws).values_list("dedupe_key", flat=True))
        assert kinds == {f"recon:drift:openai:{TODAY}"}  # 90.9 % is above this 50 % threshold


def test_only_the_admin_key_reaches_the_admin_api(ws, sim):
    with workspace_scope(ws.pk):
        with pytest.raises(ValidationError, match="admin key"):
            admin_credential_set(workspace=ws, provider="openai", secret=OPENAI_CALL_KEY)
        result = provider_costs_pull(workspace=ws, provider="openai", days=1)
    assert result.error == ""
    # Both endpoints (costs, usage) were called with the admin key and nothing else.
    assert sim.stats()["admin_auths"] == [OPENAI_ADMIN, OPENAI_ADMIN]


def test_a_refused_admin_key_is_reported_not_raised(ws, sim):
    with workspace_scope(ws.pk):
        admin_credential_set(workspace=ws, provider="openai", secret="sk-admin-but-revoked",
                             base_url=sim.url + "/v1/")  # fmt: skip
        # The simulator accepts any sk-admin- key; a wrong path is what a bad base URL gives.
        admin_credential_set(workspace=ws, provider="anthropic", secret="sk-ant-admin-x",
                             base_url=sim.url + "/nowhere")  # fmt: skip
        result = provider_costs_pull(workspace=ws, provider="anthropic", days=1)
        assert result.error == "the provider answered HTTP 404"
        assert ws.pk and selectors.admin_credentials(workspace=ws)[0].last_error == result.error


def test_tasks_and_beat(ws, sim, tmp_path, settings):
    from reconciliation.services.focus_files import focus_file_write
    from reconciliation.tasks import reconciliation_pull_task, reconciliation_pull_workspace_task

    assert settings.CELERY_BEAT_SCHEDULE["reconciliation-pull"]["task"] == "reconciliation.pull_all"
    assert "reconciliation-focus-files" in settings.CELERY_BEAT_SCHEDULE
    with workspace_scope(ws.pk):
        cost = _ledger(ws, day=TODAY)
        _billed(sim, day=TODAY)
    # The tasks are thin: called in-process here, they scope themselves to the workspace.
    result = reconciliation_pull_task.run(workspace_id=ws.pk, provider="openai")
    assert result["error"] == "" and result["lines"] == 3  # input + output line items, usage
    with workspace_scope(ws.pk):
        [row] = _rows(ws, "openai", TODAY, TODAY)
        assert row.theirs.cost == row.ours.cost == cost
        path = focus_file_write(workspace=ws, month_day=TODAY, directory=str(tmp_path))
    assert path.name == f"focus-{TODAY:%Y-%m}.csv" and "BilledCost" in path.read_text()
    assert f"{cost:f}".rstrip("0") in path.read_text()
    assert reconciliation_pull_workspace_task.name == "reconciliation.pull_workspace"
