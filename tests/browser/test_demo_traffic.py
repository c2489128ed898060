"""The demo: seed Demo Co, drive traffic through the real gateway, and the dashboard lives."""

from __future__ import annotations

import asyncio
import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from attribution import demo as attribution_demo
from attribution.services.rollups import rollup_workspace
from billing.models import UsageRecord
from devtools import demo_traffic
from gateway.ledger_writer import LedgerWriter
from tests.browser.conftest import log_in
from workspaces.management.commands.seed_demo import DEMO_PASSWORD, demo_email, seed_directory
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


class _Out:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.append(text)


def test_seeded_demo_with_live_traffic_shows_a_living_dashboard(
    live_app, page, monkeypatch, tmp_path
):
    monkeypatch.setenv("ALEPHANT_SIMULATOR_URL", live_app.simulator)
    monkeypatch.setattr(attribution_demo, "KEYS_FILE", tmp_path / "demo_keys.json")
    demo = seed_directory()
    out = _Out()
    with workspace_scope(demo.workspace.pk):
        attribution_demo.seed(demo, stdout=out)
        history = UsageRecord.objects.count()
    assert history > 1000 and "gateway keys" in out.lines[0]
    keys = attribution_demo._load_keys()
    assert len(keys) == 7
    # Idempotent: a second seed adds nothing and keeps the keys.
    with workspace_scope(demo.workspace.pk):
        attribution_demo.seed(demo, stdout=out)
        assert UsageRecord.objects.count() == history
    assert attribution_demo._load_keys() == keys

    # Playwright's loop runs in this thread: drive the traffic from another one.
    with ThreadPoolExecutor(1) as pool:
        stats = pool.submit(
            asyncio.run,
            demo_traffic.run(
                gateway=live_app.url + "/v1", keys=keys, rate=25, duration=6, seed=7, verbose=False
            ),
        ).result()
    assert stats[200] >= 50, stats
    LedgerWriter().drain()
    with workspace_scope(demo.workspace.pk):
        rollup_workspace(workspace=demo.workspace)
        live = UsageRecord.objects.exclude(request_id__startswith="demo-hist-")
        assert live.count() == sum(v for k, v in stats.items() if isinstance(k, int)), stats
        assert live.values("model").distinct().count() >= 3
        assert live.filter(agent__slug="research-looper").exclude(session_id="").exists()
        ledger = UsageRecord.objects.aggregate(s=Sum("cost_usd"))["s"]

    log_in(page, live_app.url, demo_email("finance"), DEMO_PASSWORD)
    page.goto(live_app.url + "/")
    assert page.locator("[data-budget]").count() == 3
    page.goto(live_app.url + "/spend/sessions/?sort=steps")
    looper = page.locator("tr.looping").filter(has_text="research-looper")
    assert looper.count() >= 1
    # Over the last 60 days (all of the demo), the overview equals the whole ledger.
    today = timezone.localdate(timezone=demo.workspace.tz)
    start = today - dt.timedelta(days=60)
    page.goto(f"{live_app.url}/?period=custom&start={start}&end={today}")
    shown = Decimal(page.locator("[data-total-spend]").first.get_attribute("data-total-spend"))
    assert shown == ledger
