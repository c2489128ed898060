"""Throwaway PostgreSQL clusters: a private primary and its streaming replica.

    with primary_and_replica() as (primary, replica):
        primary.url("alephant_app")      # postgres://alephant_app:...@127.0.0.1:<port>/alephant
        replica.psql("SELECT pg_wal_replay_pause()")

Same binaries, roles and database as the dev cluster (`devtools/services.py`): the owner role
that migrates, the app role RLS applies to, database `alephant`. The primary runs with
`wal_level=replica` and lets a replication role in over loopback; the replica is made with
`pg_basebackup -R` (standby.signal + primary_conninfo) and runs as a hot standby on its own port.
Everything lives in one temporary folder, removed on exit. Standard library only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devtools.services import APP, OWNER, _as_pg_user, _pg_bindir, _pg_initdb

REPLICATOR = "alephant_repl"
DATABASE = "alephant"
# Superuser over the private socket folder only (0700, the cluster's OS user); every role with a
# password over loopback; replication for the replication role only.
_HBA = f"""local       all          postgres                      trust
local       all          all                           scram-sha-256
host        all          all           127.0.0.1/32    scram-sha-256
host        replication  {REPLICATOR}  127.0.0.1/32    scram-sha-256
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    bindir: Path
    data: Path
    port: int
    sockets: Path

    def url(self, role: str = APP, db: str = DATABASE) -> str:
        return f"postgres://{role}:{role}@127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c wal_level=replica -c max_wal_senders=4 -c hot_standby=on"
        )
        _as_pg_user(
            [
                str(self.bindir / "pg_ctl"),
                *("-D", str(self.data), "-l", f"{self.data}.log", "-w", "-o", options, "start"),
            ],
            stdout=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            _as_pg_user(
                [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                stdout=subprocess.DEVNULL,
            )

    def psql(self, sql: str, db: str = DATABASE) -> str:
        """Run `sql` as the superuser (over the private socket); the output, unaligned."""
        return _as_pg_user(
            [
                str(self.bindir / "psql"),
                *("-h", str(self.sockets), "-p", str(self.port), "-U", "postgres", "-d", db),
                *("-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql),
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()


def _bootstrap(primary: Cluster) -> None:
    """The owner, app and replication roles and the database, as the dev cluster has them."""
    primary.psql(
        f"CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER}' CREATEDB NOSUPERUSER NOBYPASSRLS;"
        f"CREATE ROLE {APP} LOGIN PASSWORD '{APP}' NOSUPERUSER NOBYPASSRLS NOCREATEDB "
        "NOCREATEROLE;"
        f"CREATE ROLE {REPLICATOR} LOGIN REPLICATION PASSWORD '{REPLICATOR}';",
        db="postgres",
    )
    primary.psql(f"CREATE DATABASE {DATABASE} OWNER {OWNER}", db="postgres")


def _private_root() -> Path:
    # Not pytest's tmp_path: the cluster runs as the `postgres` OS user, who must reach it.
    root = Path(tempfile.mkdtemp(prefix="alephant-pg-", dir="/var/tmp"))
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    root.chmod(0o700)
    return root


def make_replica(primary: Cluster, root: Path) -> Cluster:
    replica = Cluster(primary.bindir, root / "replica", free_port(), primary.sockets)
    env = {**os.environ, "PGPASSWORD": REPLICATOR}
    _as_pg_user(
        [
            str(primary.bindir / "pg_basebackup"),
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", REPLICATOR),
            *("-D", str(replica.data), "-R", "-X", "stream", "-c", "fast"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    replica.start()
    return replica


def wait_replayed(primary: Cluster, replica: Cluster, timeout: float = 10.0) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = primary.psql("SELECT pg_current_wal_lsn()", db="postgres")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        caught_up = replica.psql(
            f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn", db="postgres"
        )
        if caught_up == "t":
            return
        time.sleep(0.02)
    raise TimeoutError(f"replica did not replay up to {target}")


@contextmanager
def primary_and_replica(
    before_replica: Callable[[Cluster], None] | None = None,
) -> Iterator[tuple[Cluster, Cluster]]:
    """A running primary with the Alephant roles and database, and a hot standby of it.

    `before_replica(primary)` runs before the base backup (e.g. migrations: copied, not replayed).
    """
    bindir = _pg_bindir()
    root = _private_root()
    primary = Cluster(bindir, root / "primary", free_port(), root)
    replica: Cluster | None = None
    try:
        _pg_initdb(bindir, primary.data)
        _as_pg_user(["tee", str(primary.data / "pg_hba.conf")], input=_HBA, text=True,
                    stdout=subprocess.DEVNULL)  # fmt: skip
        primary.start()
        _bootstrap(primary)
        if before_replica is not None:
            before_replica(primary)
        replica = make_replica(primary, root)
        yield primary, replica
    finally:
        for cluster in (replica, primary):
            if cluster is not None:
                cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
