"""Read replicas against a real streaming replica (alephant/dbrouter.py, alephant/replica.py).

The module starts its own primary and hot standby (devtools/pgcluster.py), migrates the primary
with `manage.py migrate`, and runs two Django processes with DATABASE_URL = the primary and
DATABASE_REPLICA_URL = the replica: a uvicorn server (`alephant.asgi`) for the real pages and
APIs, and `tests/replica_probe.py` for writes and in-process replica blocks. Routing is proven
with `pg_wal_replay_pause()`: a row committed on the primary while replay is paused is invisible
on the replica only, so "not seen" means "read from the replica" and "seen" means "primary".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from alephant.dbrouter import is_write
from devtools.pgcluster import Cluster, primary_and_replica, wait_replayed
from devtools.services import APP, OWNER
from tests.gateway.servers import ROOT, spawn_gateway, wait_http
from tests.gateway.servers import test_env as child_env


class Probe:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.replica_probe"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def __call__(self, op: str, **args: object) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        assert answer.pop("ok"), answer["error"]
        return answer

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@dataclass
class Stack:
    primary: Cluster
    replica: Cluster
    probe: Probe
    base: str
    cast: dict

    def usage_ids(self, token: str) -> set[str]:
        answer = httpx.get(
            f"{self.base}/api/v1/usage/?limit=200",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        return {row["request_id"] for row in answer.json()["results"]}

    def page(self, path: str) -> httpx.Response:
        answer = httpx.get(
            self.base + path, cookies={"sessionid": self.cast["session_a"]}, timeout=10
        )
        assert answer.status_code == 200, (path, answer.status_code)
        return answer

    def pause(self) -> None:
        self.replica.psql("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        self.replica.psql("SELECT pg_wal_replay_resume()")
        wait_replayed(self.primary, self.replica)


def _env(primary: Cluster, replica: Cluster) -> dict[str, str]:
    env = child_env()  # this run's test settings and Redis db
    env.pop("ALEPHANT_DB_AS_OWNER", None)
    env["DATABASE_URL"] = primary.url(APP)
    env["DATABASE_OWNER_URL"] = primary.url(OWNER)
    env["DATABASE_REPLICA_URL"] = replica.url(APP)
    return env


def _migrate(primary: Cluster) -> None:
    env = {
        **child_env(),
        "DATABASE_URL": primary.url(APP),
        "DATABASE_OWNER_URL": primary.url(OWNER),
    }
    env["ALEPHANT_DB_AS_OWNER"] = "1"
    env.pop("DATABASE_REPLICA_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env,
        check=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with primary_and_replica(before_replica=_migrate) as (primary, replica):
        env = _env(primary, replica)
        server, base = spawn_gateway(env)
        probe = Probe(env)
        try:
            cast = probe("setup")
            wait_http(base + "/healthz", timeout=60, proc=server)
            stack = Stack(primary, replica, probe, base, cast)
            stack.resume()  # the cast is on the replica before any test reads
            yield stack
        finally:
            probe.close()
            server.kill()


def test_pages_exports_and_usage_api_read_the_replica(stack: Stack) -> None:
    a = stack.cast["a"]
    stack.pause()
    try:
        stack.probe("write", workspace=a, request_id="a-unreplayed")
        # Committed on the primary, not yet replayed: every marked read misses it.
        ids = stack.usage_ids(stack.cast["token_a"])
        assert "a-first" in ids and "a-unreplayed" not in ids
        csv = stack.page("/requests/?export=requests").text
        assert "a-first" in csv and "a-unreplayed" not in csv
        assert "a-first" in stack.page("/requests/").text
        stack.page("/")
        assert stack.probe("read", workspace=a, request_id="a-unreplayed") == {"seen": False}
        # The primary has it (the same read outside a replica block).
        assert stack.primary.psql("SELECT count(*) FROM billing_usagerecord "
                                  "WHERE request_id = 'a-unreplayed'") == "1"  # fmt: skip
    finally:
        stack.resume()
    assert "a-unreplayed" in stack.usage_ids(stack.cast["token_a"])
    assert "a-unreplayed" in stack.page("/requests/?export=requests").text


def test_key_and_efficiency_dashboards_read_the_replica(stack: Stack) -> None:
    a = stack.cast["a"]
    stack.page("/efficiency/")  # the first visit computes the week's report (a write: primary)
    wait_replayed(stack.primary, stack.replica)
    stack.pause()
    try:
        stack.probe("write_key", workspace=a, name="key-unreplayed")
        stack.primary.psql(
            "UPDATE efficiency_efficiencyreport SET input_digest = 'unreplayed0000ff'"
        )
        assert "key-unreplayed" not in stack.page("/manage/gateway-keys/").text
        assert "unreplayed0000ff" not in stack.page("/efficiency/").text
    finally:
        stack.resume()
    assert "key-unreplayed" in stack.page("/manage/gateway-keys/").text
    assert "unreplayed0000ff" in stack.page("/efficiency/").text


def test_a_block_that_wrote_reads_its_own_write_from_the_primary(stack: Stack) -> None:
    a = stack.cast["a"]
    stack.pause()
    try:
        stack.probe("write", workspace=a, request_id="a-paused-2")
        seen = stack.probe(
            "write_then_read", workspace=a, request_id="a-own-write", unreplayed_id="a-paused-2"
        )
        assert seen == {
            "unreplayed_before_write": False,  # replica, before the block wrote
            "own_write": True,  # primary from the write on
            "unreplayed_after_write": True,
        }
        assert "a-own-write" not in stack.usage_ids(stack.cast["token_a"])  # a new request
        seen = stack.probe(
            "wrote_before_block", workspace=a, request_id="a-before", unreplayed_id="a-paused-2"
        )
        assert seen == {"unreplayed": True}
    finally:
        stack.resume()
    assert {"a-own-write", "a-paused-2", "a-before"} <= stack.usage_ids(stack.cast["token_a"])


def test_what_one_routed_read_costs(stack: Stack) -> None:
    sent = stack.probe("read_queries", workspace=stack.cast["a"], request_id="a-first")
    primary, replica = sent["primary"], sent["replica"]
    # Primary: the request's scope, plus one check that its transaction has not written.
    assert primary[0] == "BEGIN" and primary[-1] == "COMMIT" and len(primary) == 4
    assert "set_config" in primary[1] and "pg_current_xact_id_if_assigned" in primary[2]
    # Replica: the same scope in its own transaction, then the read itself.
    assert replica[0] == "BEGIN" and replica[-1] == "COMMIT" and len(replica) == 4
    assert "set_config" in replica[1] and "billing_usagerecord" in replica[2]


def test_rls_holds_on_the_replica(stack: Stack) -> None:
    a, b = stack.cast["a"], stack.cast["b"]
    stack.pause()
    try:
        stack.probe("write", workspace=b, request_id="b-unreplayed")
        ids_b = stack.usage_ids(stack.cast["token_b"])
        assert "b-first" in ids_b and "b-unreplayed" not in ids_b  # from the replica
        assert not any(i.startswith("a-") for i in ids_b)
        assert not any(i.startswith("b-") for i in stack.usage_ids(stack.cast["token_a"]))
        assert stack.probe("read", workspace=b, request_id="a-first") == {"seen": False}
        assert stack.probe("read_unscoped") == {"rows": 0}
    finally:
        stack.resume()
    # The app role straight on the standby: nothing without a scope, one workspace with one.
    with psycopg.connect(stack.replica.url(APP)) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM billing_usagerecord").fetchone() == (0,)
        conn.execute("SELECT set_config('app.workspace_id', %s, true)", [str(a)])
        rows = conn.execute("SELECT DISTINCT workspace_id FROM billing_usagerecord").fetchall()
        assert rows == [(a,)]
    assert int(stack.replica.psql("SELECT count(*) FROM billing_usagerecord")) >= 2  # superuser


def test_reads_fall_back_to_the_primary_when_the_replica_is_down(stack: Stack) -> None:
    a = stack.cast["a"]
    stack.replica.stop()
    assert not os.path.exists(stack.replica.data / "postmaster.pid")
    stack.probe("write", workspace=a, request_id="a-after-stop")  # the primary alone has it
    assert "a-after-stop" in stack.usage_ids(stack.cast["token_a"])
    assert "a-after-stop" in stack.page("/requests/?export=requests").text
    stack.page("/")
    assert stack.probe("read", workspace=a, request_id="a-after-stop") == {"seen": True}


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ("SELECT 1", False),
        ("  select set_config('app.workspace_id', '1', true)", False),
        ('SAVEPOINT "s1"', False),
        ('RELEASE SAVEPOINT "s1"', False),
        ("INSERT INTO t VALUES (1)", True),
        ("UPDATE t SET x = 1", True),
        ("DELETE FROM t", True),
        ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", True),
    ],
)
def test_what_counts_as_a_write(sql: str, writes: bool) -> None:
    assert is_write(sql) is writes


def _settings_in_child(**env: str) -> dict:
    code = (
        "import json; import alephant.settings.base as s; "
        "print(json.dumps({'aliases': sorted(s.DATABASES), 'routers': s.DATABASE_ROUTERS, "
        "'test': s.DATABASES.get('replica', {}).get('TEST'), "
        "'options': s.DATABASES.get('replica', {}).get('OPTIONS')}))"
    )
    child = {**os.environ, **env}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=child, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def test_replica_alias_only_when_configured_and_never_for_migrations() -> None:
    url = "postgres://alephant_app:alephant_app@127.0.0.1:1/alephant"
    on = _settings_in_child(DATABASE_REPLICA_URL=url, ALEPHANT_DB_AS_OWNER="0")
    assert on["aliases"] == ["default", "replica"]
    assert on["routers"] == ["alephant.dbrouter.ReplicaRouter"]
    assert on["test"]["MIRROR"] == "default"
    assert on["options"]["connect_timeout"] == 2
    owner = _settings_in_child(DATABASE_REPLICA_URL=url, ALEPHANT_DB_AS_OWNER="1")
    assert owner["aliases"] == ["default"] and owner["routers"] == []
    off = _settings_in_child(DATABASE_REPLICA_URL="")
    assert off["aliases"] == ["default"] and off["routers"] == []
