"""Key names on a Redis Cluster: everything one admit/settle script touches shares one slot."""

from __future__ import annotations

import orjson
import pytest
from redis.cluster import key_slot

from core import rediskeys


@pytest.fixture
def cluster_keys(monkeypatch):
    monkeypatch.setattr(rediskeys, "CLUSTER", True)
    monkeypatch.setattr(rediskeys, "SHARDS", 16)


def _slot(name: str) -> int:
    return key_slot(name.encode())


@pytest.mark.parametrize("workspace_id", [1, 7, 16, 12345])
def test_a_workspace_counters_and_streams_share_a_slot(cluster_keys, workspace_id):
    slots = {
        _slot(rediskeys.budget_counter(workspace_id, 3, "2026-12")),
        _slot(rediskeys.workspace_tag(workspace_id) + ":resv"),
        _slot(rediskeys.usage_stream(workspace_id)),
        _slot(rediskeys.alerts_stream(workspace_id)),
    }
    assert len(slots) == 1
    assert rediskeys.usage_stream(workspace_id) in rediskeys.usage_streams()
    assert rediskeys.alerts_stream(workspace_id) in rediskeys.alerts_streams()


def test_the_event_names_its_own_shard(cluster_keys):
    raw = orjson.dumps({"workspace_id": 21, "request_id": "r"})
    assert rediskeys.usage_stream_of_event(raw, "ignored") == "alephant:usage:{s5}"
    assert len(set(rediskeys.usage_streams())) == 16


def test_one_redis_keeps_the_historical_names():
    assert not rediskeys.CLUSTER
    assert rediskeys.workspace_tag(4) == "alephant:{w4}"
    assert rediskeys.usage_streams() == [rediskeys.USAGE_STREAM] == ["alephant:usage"]
    assert rediskeys.alerts_stream(4) == "alephant:alerts"
    assert rediskeys.usage_stream_of_event(b"{}", "custom") == "custom"
