"""The gateway, the ledger writer and Django on Redis Sentinel (issue 13): 1 master, 1 replica
and 3 sentinels on loopback; the master is SIGKILLed, the sentinels promote the replica, and
calls resume without restarting anything; every answered call has its ledger row."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from decimal import Decimal

import httpx
import pytest

from billing.models import UsageRecord
from billing.services.budgets import budget_create
from tests.cast import build_cast
from tests.gateway.conftest import add_provider_keys, issue_key
from tests.gateway.redistopo import REDIS_CLI, sentinel_start
from tests.gateway.servers import stack_start, start_ledger_writer, wait_until
from tests.gateway.servers import test_env as child_env
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.skipif(REDIS_CLI is None, reason="Debian redis-tools not installed")

BODY = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def sentinel_stack(transactional_db, simulator, tmp_path, settings):
    topo = sentinel_start(tmp_path)
    env = child_env()
    env.update(
        # The host here is not used: the sentinels name the master (password and db are).
        REDIS_URL="redis://127.0.0.1:1/0",
        REDIS_SENTINELS=topo.env_value,
        REDIS_SENTINEL_MASTER=topo.name,
        CELERY_BROKER_URL=settings.REDIS_URL,
        ALEPHANT_CACHE_URL=settings.REDIS_URL,
        ALEPHANT_UPSTREAM_RETRIES="1",
    )
    stack = stack_start(env, simulator, gateways=2)
    writer = start_ledger_writer(env, "--claim-idle-ms", "2000")
    yield topo, stack
    writer.kill()
    stack.stop()
    topo.stop()


def _call(base: str, key: str) -> int:
    try:
        return httpx.post(
            base + "/v1/chat/completions",
            json=BODY,
            headers={"authorization": f"Bearer {key}"},
            timeout=10,
        ).status_code
    except httpx.HTTPError:
        return -1


def test_calls_resume_after_a_sentinel_failover(sentinel_stack, simulator):
    topo, stack = sentinel_stack
    cast = build_cast()
    add_provider_keys(cast, simulator)
    _key, raw = issue_key(cast)
    ws = cast.workspace
    with workspace_scope(ws.pk):
        budget_create(
            workspace=ws,
            actor=cast.owner,
            scope_type="workspace",
            amount_usd=Decimal("50"),
            period="month",
        )
    assert all(_call(stack.gw_urls[n % 2], raw) == 200 for n in range(4))
    old = topo.current_master()
    topo.procs[old].kill(signal.SIGKILL)
    killed_at = time.monotonic()
    log: list[tuple[float, int]] = []
    resumed = None
    n = 0
    while time.monotonic() - killed_at < 30:
        status = _call(stack.gw_urls[n % 2], raw)
        n += 1
        log.append((time.monotonic() - killed_at, status))
        if status == 200 and resumed is None and topo.current_master() not in (None, old):
            resumed = log[-1][0]
        if resumed is not None and time.monotonic() - killed_at > resumed + 2:
            break
        time.sleep(0.05)
    counts: dict[int, int] = defaultdict(int)
    for _t, status in log:
        counts[status] += 1
    print(f"\nsentinel failover: resumed {resumed} s after the kill; statuses {dict(counts)}")
    assert resumed is not None, log
    assert topo.current_master() == topo.replica
    # Both gateways answer again, without a restart.
    assert _call(stack.gw_urls[0], raw) == 200 and _call(stack.gw_urls[1], raw) == 200
    answered = 4 + counts[200] + 2

    def rows() -> int:
        with workspace_scope(ws.pk):
            return UsageRecord.objects.filter(status_code=200).count()

    # Every answered call reaches the ledger through the writer, which followed the failover.
    assert wait_until(lambda: rows() == answered, timeout=30), (rows(), answered)
