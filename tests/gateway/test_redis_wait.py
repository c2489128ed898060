"""The stricter durability setting, `ALEPHANT_REDIS_WAIT_REPLICAS` (`gateway/hotpath/replication.py`),
on real Redis processes: a master and a replica on loopback (and, end to end, 3 sentinels, the
gateway and the ledger writer). A replica that acknowledges: nothing is spooled. A replica that
does not (SIGSTOPped, or its link cut): the usage is spooled before the answer completes, and
after the master dies and the stale replica is promoted, the answered call still gets its
ledger row (with `ALEPHANT_REDIS_WAIT_REPLICAS=0` the same scenario loses it: checked by hand)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from django.conf import settings

from billing.models import UsageRecord
from billing.services.budgets import budget_create
from gateway.hotpath.config import Config
from gateway.hotpath.replication import ReplicaWait
from gateway.hotpath.resp import RespClient
from gateway.hotpath.spool import Claimed, Spool, read_events, replay_once
from tests.cast import build_cast
from tests.gateway.conftest import add_provider_keys, issue_key
from tests.gateway.redistopo import REDIS_CLI, REDIS_SERVER, sentinel_start
from tests.gateway.servers import Proc, free_port, stack_start, start_ledger_writer, wait_until
from tests.gateway.servers import test_env as child_env
from workspaces.tenancy import workspace_scope

STREAM = "alephant:test:replwait"
BODY = {"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _events(*ids: str) -> list[bytes]:
    return [orjson.dumps({"request_id": rid, "cost_usd": "0.000001"}) for rid in ids]


def _spooled(directory: Path) -> list[str]:
    return sorted(
        orjson.loads(raw)["request_id"]
        for path in directory.rglob("*.jsonl")
        for raw in read_events(path)
    )


def _synced(port: int) -> bool:
    try:
        info = redis.Redis(port=port, socket_timeout=1).info("replication")
    except redis.RedisError:
        return False
    return info.get("master_link_status") == "up"


@pytest.fixture
def master_replica(tmp_path):
    master, replica = free_port(), free_port()
    procs = []
    for port, extra in ((master, []), (replica, ["--replicaof", "127.0.0.1", str(master)])):
        node = tmp_path / str(port)
        node.mkdir()
        cmd = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node)]
        procs.append(Proc([*cmd, "--save", "", "--appendonly", "no", *extra]).start())
    try:
        assert wait_until(lambda: _synced(replica), timeout=20), "replica never synced"
        yield master, replica, procs[1]
    finally:
        procs[1].proc.send_signal(signal.SIGCONT)  # a stopped process cannot take SIGTERM
        for proc in procs:
            proc.kill()


def _confirm(
    port: int,
    spool: Spool,
    batches: list[list[bytes]],
    replicas: int = 1,
    timeout_ms: int = 5000,
    lean: bool = True,
):
    """XADD each batch on one connection, then confirm them all at once on the waiter's own."""

    async def run():
        writer = aioredis.Redis(port=port)
        # The gateway's own choice on one server (`replica_wait`); redis-py's for Sentinel.
        client = RespClient(port=port, timeout_s=10) if lean else aioredis.Redis(port=port)
        waiter = ReplicaWait(client, spool, replicas=replicas, timeout_ms=timeout_ms)
        try:
            for batch in batches:
                for raw in batch:
                    await writer.xadd(STREAM, {"e": raw})
            started = time.monotonic()
            results = await asyncio.gather(
                *(waiter.confirm(b, request_id=f"r{n}") for n, b in enumerate(batches))
            )
            return results, time.monotonic() - started
        finally:
            await writer.aclose()
            await client.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("lean", [True, False], ids=["respclient", "redis-py"])
def test_acknowledged_usage_is_not_spooled_and_is_on_the_replica(master_replica, tmp_path, lean):
    master, replica, _proc = master_replica
    spool = Spool(tmp_path / "spool", redis_url=f"redis://127.0.0.1:{master}/0", stream=STREAM)
    results, _elapsed = _confirm(master, spool, [_events("a"), _events("b", "c")], lean=lean)
    assert results == [True, True]
    assert _spooled(tmp_path / "spool") == []
    # Acknowledged means the replica has it (it read the stream the master wrote).
    on_replica = redis.Redis(port=replica).xrange(STREAM)
    assert sorted(orjson.loads(f[b"e"])["request_id"] for _i, f in on_replica) == ["a", "b", "c"]
    spool.close()


def test_concurrent_calls_share_wait_rounds(master_replica, tmp_path):
    master, _replica, _proc = master_replica
    spool = Spool(tmp_path / "spool", redis_url=f"redis://127.0.0.1:{master}/0", stream=STREAM)
    results, _elapsed = _confirm(master, spool, [_events(f"c{n}") for n in range(40)])
    assert results == [True] * 40
    stats = redis.Redis(port=master).info("commandstats")
    # Group commit: 40 callers confirmed by one or two rounds, not 40 WAITs.
    assert stats["cmdstat_wait"]["calls"] <= 2, stats["cmdstat_wait"]
    spool.close()


@pytest.mark.parametrize("lean", [True, False], ids=["respclient", "redis-py"])
def test_a_replica_that_does_not_acknowledge_gets_the_usage_spooled(master_replica, tmp_path, lean):
    master, _replica, replica_proc = master_replica
    spool = Spool(tmp_path / "spool", redis_url=f"redis://127.0.0.1:{master}/0", stream=STREAM)
    replica_proc.proc.send_signal(signal.SIGSTOP)
    batches = [_events("x"), _events("y", "z")]
    results, elapsed = _confirm(master, spool, batches, timeout_ms=300, lean=lean)
    assert results == [False, False]
    assert _spooled(tmp_path / "spool") == ["x", "y", "z"]
    assert elapsed >= 0.25  # the WAIT ran its 300 ms timeout: no replica answered
    spool.close()


def test_asking_for_more_replicas_than_exist_spools(master_replica, tmp_path):
    master, _replica, _proc = master_replica
    spool = Spool(tmp_path / "spool", redis_url=f"redis://127.0.0.1:{master}/0", stream=STREAM)
    results, _elapsed = _confirm(master, spool, [_events("m")], replicas=2, timeout_ms=300)
    assert results == [False]
    assert _spooled(tmp_path / "spool") == ["m"]
    spool.close()


def _replay_rounds(port: int, spool: Spool, rounds) -> list[int]:
    """Run `replay_once` with a waiter on `port`; before each round, `rounds[i]()` (or None)."""

    async def run() -> list[int]:
        redis_ = aioredis.Redis(port=port)
        waiter = ReplicaWait(RespClient(port=port, timeout_s=10), spool, replicas=1, timeout_ms=300)
        pending: list[Claimed] = []
        done = []
        try:
            for before in rounds:
                if before is not None:
                    before()
                done.append(await replay_once(spool, redis_, pending, waiter))
            return done
        finally:
            for item in pending:
                os.close(item.fd)
            await waiter.aclose()
            await redis_.aclose()

    return asyncio.run(run())


def _stream_ids(port: int) -> list[str]:
    return sorted(
        orjson.loads(f[b"e"])["request_id"] for _i, f in redis.Redis(port=port).xrange(STREAM)
    )


def test_replay_keeps_spooled_usage_until_a_replica_holds_it(master_replica, tmp_path):
    """The spool is the only copy a failover cannot take away: replaying it into a master whose
    replica is away and deleting it at once would lose it again (seen in CI: the replay beat the
    SIGKILL of the master). It is pushed once, kept, and deleted once the replica has it."""
    master, replica, replica_proc = master_replica
    spool = Spool(tmp_path / "spool", redis_url=f"redis://127.0.0.1:{master}/0", stream=STREAM)
    spool.append(_events("p", "q"))
    stopped = lambda: replica_proc.proc.send_signal(signal.SIGSTOP)  # noqa: E731
    resumed = lambda: replica_proc.proc.send_signal(signal.SIGCONT)  # noqa: E731
    assert _replay_rounds(master, spool, [stopped, None, None, resumed]) == [0, 0, 0, 2]
    assert _spooled(tmp_path / "spool") == []
    assert _stream_ids(master) == ["p", "q"]  # pushed once, not once a round
    assert wait_until(lambda: _stream_ids(replica) == ["p", "q"], timeout=10)
    spool.close()


def test_replay_pushes_again_when_the_master_lost_what_it_was_given(master_replica, tmp_path):
    """A failover to a replica that never had the replayed events: the new master lacks the
    replay mark, so the events are pushed again (here the master's data is flushed, as a stale
    replica promoted in its place would lack it), and deleted once a replica holds them."""
    master, _replica, replica_proc = master_replica
    spool = Spool(tmp_path / "spool", redis_url=f"redis://127.0.0.1:{master}/0", stream=STREAM)
    spool.append(_events("s"))
    stopped = lambda: replica_proc.proc.send_signal(signal.SIGSTOP)  # noqa: E731
    lost = lambda: redis.Redis(port=master).flushall()  # noqa: E731

    def resumed() -> None:
        replica_proc.proc.send_signal(signal.SIGCONT)
        assert wait_until(lambda: _synced(_replica), timeout=20)

    assert _replay_rounds(master, spool, [stopped, lost, resumed]) == [0, 0, 1]
    assert _stream_ids(master) == ["s"]  # pushed again after the loss, deleted after resync
    assert _spooled(tmp_path / "spool") == []
    spool.close()


def test_config_reads_the_setting():
    assert Config.from_env({}).redis_wait_replicas == 0
    env = {"ALEPHANT_REDIS_WAIT_REPLICAS": "1", "ALEPHANT_REDIS_WAIT_TIMEOUT_MS": "50"}
    config = Config.from_env(env)
    assert (config.redis_wait_replicas, config.redis_wait_timeout_ms) == (1, 50)


@pytest.mark.skipif(REDIS_CLI is None, reason="Debian redis-tools not installed")
def test_answered_call_keeps_its_ledger_row_across_a_failover_to_a_stale_replica(
    transactional_db, simulator, tmp_path
):
    topo = sentinel_start(tmp_path, down_after_ms=3000)
    env = child_env()
    env.update(
        REDIS_URL="redis://127.0.0.1:1/0",
        REDIS_SENTINELS=topo.env_value,
        REDIS_SENTINEL_MASTER=topo.name,
        CELERY_BROKER_URL=settings.REDIS_URL,
        ALEPHANT_CACHE_URL=settings.REDIS_URL,
        ALEPHANT_REDIS_WAIT_REPLICAS="1",
        ALEPHANT_REDIS_WAIT_TIMEOUT_MS="300",
        ALEPHANT_USAGE_SPOOL_DIR=str(tmp_path / "spool"),
    )
    stack = stack_start(env, simulator)
    writer = None
    try:
        cast = build_cast()
        add_provider_keys(cast, simulator)
        _key, raw = issue_key(cast)
        with workspace_scope(cast.workspace.pk):
            budget_create(
                workspace=cast.workspace,
                actor=cast.owner,
                scope_type="workspace",
                amount_usd=Decimal("50"),
                period="month",
            )

        def call() -> httpx.Response:
            return httpx.post(
                stack.gw_url + "/v1/chat/completions",
                json=BODY,
                headers={"authorization": f"Bearer {raw}"},
                timeout=10,
            )

        first = call()
        assert first.status_code == 200
        assert _spooled(tmp_path / "spool") == []  # the replica acknowledged it
        # Cut the replica off: it may not resync (no PSYNC/SYNC for it on the master) and its
        # link is dropped, so it never sees the next settle. (A SIGSTOPped replica would still
        # find those bytes in its socket buffer when resumed.)
        master = redis.Redis(port=topo.master)
        master.execute_command("ACL", "SETUSER", "default", "-psync", "-sync")
        master.execute_command("CLIENT", "KILL", "TYPE", "replica")
        answered = call()
        assert answered.status_code == 200
        request_id = answered.headers["alephant-request-id"]
        # Spooled (fsynced) before the answer completed: the replica never acknowledged.
        assert request_id in _spooled(tmp_path / "spool")
        old = topo.current_master()
        topo.procs[old].kill(signal.SIGKILL)
        # Sentinel elections retry after 2 x failover-timeout: a loaded box can need several.
        assert wait_until(lambda: topo.current_master() == topo.replica, timeout=90)
        # The writer starts only now, as if it lagged: the killed master's stream is gone, so
        # what reaches the ledger is what the promoted replica has, plus the spool's replay.
        writer = start_ledger_writer(env, "--claim-idle-ms", "2000")
        # The promoted replica never had the second call's settle; the spool replays it there.

        def recorded() -> set[str]:
            with workspace_scope(cast.workspace.pk):
                return set(UsageRecord.objects.values_list("request_id", flat=True))

        assert wait_until(
            lambda: {first.headers["alephant-request-id"], request_id} <= recorded(), timeout=30
        ), recorded()
    finally:
        if writer is not None:
            writer.kill()
        stack.stop()
        topo.stop()
