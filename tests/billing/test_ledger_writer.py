"""The ledger writer: batches per workspace under RLS, idempotent, reclaims a dead consumer's work."""

from __future__ import annotations

import time
from decimal import Decimal

import orjson
import pytest

from billing.models import UsageRecord
from gateway.hotpath.usage import GROUP, STREAM
from gateway.ledger_writer import DEAD_STREAM, LedgerWriter
from workspaces.tenancy import workspace_scope

pytestmark = pytest.mark.django_db(transaction=True)


def event(workspace_id: int, request_id: str, **extra) -> dict:
    return {
        "request_id": request_id,
        "workspace_id": workspace_id,
        "gateway_key_id": None,
        "member_id": None,
        "department_id": None,
        "agent_id": None,
        "session_id": "s",
        "session_path": "",
        "session_name": "",
        "properties": {"a": "b"},
        "provider": "openai",
        "model": "gpt-4o-mini",
        "endpoint": "chat",
        "input_tokens": 10,
        "output_tokens": 5,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": "0.000004500000",
        "saved_usd": "0",
        "cache_hit": False,
        "status_code": 200,
        "error_type": "",
        "estimated": False,
        "stream": False,
        "latency_ms": 12,
        "fingerprint": "f" * 64,
        "created_at": time.time(),
        **extra,
    }


def push(redis_client, *events: dict) -> None:
    for e in events:
        redis_client.xadd(STREAM, {"e": orjson.dumps(e)})


def test_batch_per_workspace_is_idempotent_and_scoped(cast, redis_client):
    a, b = cast.workspace.pk, cast.other_workspace.pk
    # A replay is the same event: same request id *and* created_at (the ledger's unique key).
    r1, r2 = event(a, "r1"), event(b, "r2")
    push(redis_client, r1, r2, event(a, "r3"), r1)
    writer = LedgerWriter(redis_client, consumer="t1")
    assert writer.drain() == 4
    with workspace_scope(a):
        rows = list(UsageRecord.objects.order_by("request_id"))
        assert [r.request_id for r in rows] == ["r1", "r3"]  # RLS: only A's rows
        assert rows[0].cost_usd == Decimal("0.0000045") and rows[0].properties == {"a": "b"}
    with workspace_scope(b):
        assert list(UsageRecord.objects.values_list("request_id", flat=True)) == ["r2"]
    # Replaying the same events stores nothing twice; the stream is emptied after commit.
    push(redis_client, r1, r2)
    assert writer.drain() == 2
    with workspace_scope(a):
        assert UsageRecord.objects.count() == 2
    assert redis_client.xlen(STREAM) == 0


def test_a_crashed_consumers_entries_are_reclaimed(cast, redis_client):
    a = cast.workspace.pk
    push(redis_client, *(event(a, f"c{i}") for i in range(5)))
    crashed = LedgerWriter(redis_client, consumer="crashed", claim_idle_ms=10)
    taken = crashed.read(block_ms=-1)  # read, then "die" before writing or acknowledging
    assert len(taken) == 5
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 5
    time.sleep(0.05)
    survivor = LedgerWriter(redis_client, consumer="survivor", claim_idle_ms=10)
    assert survivor.drain() == 5
    with workspace_scope(a):
        assert UsageRecord.objects.count() == 5
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0


def test_bad_events_go_to_the_dead_letter_stream_without_blocking(cast, redis_client):
    a = cast.workspace.pk
    redis_client.xadd(STREAM, {"e": b"{not json"})
    push(
        redis_client,
        event(a, "ok1"),
        {"request_id": "broken"},
        event(999_999, "orphan"),
        event(a, "ok2"),
    )
    assert LedgerWriter(redis_client, consumer="t").drain() == 5
    with workspace_scope(a):
        assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"ok1", "ok2"}
    assert redis_client.xlen(DEAD_STREAM) == 3
