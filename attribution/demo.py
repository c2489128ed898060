"""Demo data for the dashboard (called by `manage.py seed_demo` inside Demo Co's scope).

* provider keys that point at the local upstream simulator (`ALEPHANT_SIM_PORT`, 9100);
* gateway keys for the demo members and agents; their raw values go to `.run/demo_keys.json`
  (local, git-ignored) for the traffic driver `devtools/demo_traffic.py`;
* 30 days of history in the ledger (request ids `demo-hist-*`), so the month view has a shape
  before live traffic arrives, then the rollups of that range;
* a few budgets, if the workspace has none yet.

Idempotent: existing keys with a known raw value are kept, history is inserted once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from decimal import Decimal

from django.utils import timezone

from alephant.env import BASE_DIR
from attribution.services.rollups import rollup_rebuild_range, rollup_workspace
from billing.models import Budget, UsageRecord
from billing.pricing import cost_usd
from billing.services.budgets import budget_create
from billing.services.ledger_retention import ledger_partitions_keep_up
from gateway.models import GatewayKey, ProviderCredential
from gateway.services.keys import gateway_key_create, gateway_key_revoke, provider_key_create

KEYS_FILE = BASE_DIR / ".run" / "demo_keys.json"
HISTORY_DAYS = 30
# (who, model, weight per day, input tokens, output tokens)
HISTORY_MIX = (
    ("dev1", "gpt-4o", 14, 2400, 500),
    ("dev2", "gpt-4o-mini", 30, 1800, 300),
    ("analyst", "claude-sonnet-4-20250514", 6, 6000, 900),
    ("admin", "gpt-4o-mini", 8, 900, 200),
    ("agent:support-bot", "claude-3-5-haiku-latest", 40, 1500, 250),
    ("agent:code-reviewer", "gpt-4o", 12, 9000, 700),
    ("agent:research-looper", "claude-sonnet-4-20250514", 10, 7000, 1200),
)


def simulator_url() -> str:
    port = os.environ.get("ALEPHANT_SIM_PORT", "9100")  # as in devtools/procs.py
    return os.environ.get("ALEPHANT_SIMULATOR_URL", f"http://127.0.0.1:{port}").rstrip("/")


def _load_keys() -> dict[str, str]:
    try:
        return json.loads(KEYS_FILE.read_text())
    except (OSError, ValueError):
        return {}


def seed_provider_keys(demo) -> list[str]:
    ws, sim = demo.workspace, simulator_url()
    made = []
    for provider, name, base_url in (
        ("openai", "simulator-openai", f"{sim}/v1"),
        ("anthropic", "simulator-anthropic", sim),
    ):
        if not ProviderCredential.objects.filter(workspace=ws, name=name).exists():
            provider_key_create(
                workspace=ws,
                provider=provider,
                name=name,
                secret=f"sk-sim-{provider}-demo-0000",
                base_url=base_url,
            )
            made.append(name)
    return made


def seed_gateway_keys(demo) -> dict[str, str]:
    """One key per demo member (dev1, dev2, analyst, admin) and per agent."""
    ws = demo.workspace
    raw_keys = _load_keys()
    holders = [
        (f"demo-{local}", demo.member(local), None)
        for local in ("dev1", "dev2", "analyst", "admin")
    ]
    holders += [(f"demo-agent-{slug}", None, agent) for slug, agent in demo.agents.items()]
    for name, member, agent in holders:
        existing = GatewayKey.objects.filter(workspace=ws, name=name, revoked_at__isnull=True)
        if existing.exists() and name in raw_keys:
            continue
        for key in existing:  # the raw value is lost: replace the key
            gateway_key_revoke(key=key)
        _key, raw = gateway_key_create(workspace=ws, name=name, member=member, agent=agent)
        raw_keys[name] = raw
    KEYS_FILE.parent.mkdir(parents=True, exist_ok=True)
    KEYS_FILE.write_text(json.dumps(raw_keys, indent=1))
    os.chmod(KEYS_FILE, 0o600)
    return raw_keys


def _history_holder(demo, keys: dict, who: str) -> tuple:
    """(agent or None, gateway key, member id, department id) of a HISTORY_MIX entry."""
    if who.startswith("agent:"):
        agent = demo.agents[who.split(":", 1)[1]]
        return agent, keys.get(f"demo-agent-{agent.slug}"), agent.owner_id, agent.department_id
    member = demo.member(who)
    return None, keys.get(f"demo-{who}"), member.pk, member.department_id


def seed_history(demo, *, now: dt.datetime | None = None) -> int:
    """Insert 30 days of plausible ledger rows once; return how many were added."""
    ws = demo.workspace
    if UsageRecord.objects.filter(workspace=ws, request_id__startswith="demo-hist-").exists():
        return 0
    now = now or timezone.now()
    keys = {k.name: k for k in GatewayKey.objects.filter(workspace=ws, revoked_at__isnull=True)}
    rng = random.Random(2026)
    rows = []
    for day in range(HISTORY_DAYS, 0, -1):
        growth = 0.6 + 0.4 * (HISTORY_DAYS - day) / HISTORY_DAYS  # spend grows over the month
        for who, model, per_day, tin, tout in HISTORY_MIX:
            agent, key, member_id, department_id = _history_holder(demo, keys, who)
            provider = "anthropic" if model.startswith("claude") else "openai"
            for i in range(max(1, int(per_day * growth * rng.uniform(0.6, 1.4)))):
                at = now - dt.timedelta(days=day, seconds=rng.randint(0, 86_399))
                if agent is not None:  # a run's steps follow each other within minutes
                    run_start = now - dt.timedelta(days=day, hours=(i // 8) * 2 % 20 + 1)
                    at = run_start + dt.timedelta(seconds=(i % 8) * rng.randint(20, 90))
                n_in = int(tin * rng.uniform(0.5, 1.5))
                n_out = int(tout * rng.uniform(0.5, 1.5))
                cached = n_in // 3 if rng.random() < 0.2 else 0
                looping = agent is not None and agent.slug == "research-looper"
                session = f"hist-{who}-{day}-{i // 8}" if agent is not None else ""
                rows.append(
                    UsageRecord(
                        workspace=ws,
                        request_id=f"demo-hist-{day}-{who}-{i}",
                        gateway_key=key,
                        member_id=member_id,
                        department_id=department_id,
                        agent=agent,
                        session_id=session,
                        provider=provider,
                        model=model,
                        endpoint="chat",
                        input_tokens=n_in,
                        output_tokens=n_out,
                        cached_tokens=cached,
                        cost_usd=cost_usd(
                            provider,
                            model,
                            input_tokens=n_in,
                            output_tokens=n_out,
                            cached_tokens=cached,
                        ),
                        cache_hit=False,
                        status_code=200,
                        latency_ms=rng.randint(300, 4000),
                        fingerprint=(f"loop-{day}-{i // 8}" if looping else f"h{day}-{who}-{i}"),
                        created_at=at,
                        properties={"env": "prod" if rng.random() < 0.7 else "dev"},
                    )
                )
    UsageRecord.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
    return len(rows)


def seed_budgets(demo) -> int:
    ws = demo.workspace
    if Budget.objects.filter(workspace=ws).exists():
        return 0
    budget_create(
        workspace=ws,
        actor=None,
        name="Company AI spend",
        scope_type="workspace",
        scope_id=ws.pk,
        metric="usd",
        amount_usd=Decimal(400),
        period="month",
    )
    budget_create(
        workspace=ws,
        actor=None,
        name="Research",
        scope_type="department",
        scope_id=demo.departments["Research"].pk,
        metric="usd",
        amount_usd=Decimal(150),
        period="month",
    )
    budget_create(
        workspace=ws,
        actor=None,
        name="Looper daily cap",
        scope_type="agent",
        scope_id=demo.agents["research-looper"].pk,
        metric="usd",
        amount_usd=Decimal(5),
        period="day",
    )
    return 3


def seed(demo, *, stdout) -> None:
    made = seed_provider_keys(demo)
    raw_keys = seed_gateway_keys(demo)
    added = seed_history(demo)
    budgets = seed_budgets(demo)
    now = timezone.now()
    if added:
        rollup_rebuild_range(
            workspace=demo.workspace,
            start=now - dt.timedelta(days=HISTORY_DAYS + 1),
            end=now + dt.timedelta(hours=1),
        )
    rollup_workspace(workspace=demo.workspace)
    stdout.write(
        f"  attribution: provider keys -> simulator {simulator_url()} "
        f"({', '.join(made) or 'already there'}); {len(raw_keys)} gateway keys in "
        f"{KEYS_FILE}; {added} history rows; {budgets} budgets"
    )


def after_seed(*, stdout) -> None:
    """The history went in past months' dates, which have no ledger partition yet on a new
    install: those rows landed in the default partition. Make their months' partitions now
    (moving the rows in), as the hourly beat task would, so a demo's reads hit month partitions
    from its first minute."""
    created = ledger_partitions_keep_up(now=timezone.now())
    if created:
        stdout.write(f"  ledger partitions made for the history: {', '.join(created)}")
