"""Real Redis topologies on loopback for the scale-out tests: a 3-master + 3-replica Redis
Cluster (Debian `redis-server --cluster-enabled yes`, `redis-cli --cluster create`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.gateway.servers import Proc, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli")
REPLICAS = ("--cluster-replicas", "1", "--cluster-yes")


@dataclass
class Cluster:
    ports: list[int]
    procs: dict[int, Proc] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1)

    def master_of(self, key: str) -> int:
        """The port of the master currently serving `key`'s slot."""
        for port in self.ports:
            if self.procs[port].proc.poll() is not None:
                continue
            slot = self.node(port).execute_command("CLUSTER", "KEYSLOT", key)
            for start, end, master, *_ in self.node(port).execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    return int(master[1])
        raise LookupError(key)

    def state_ok(self, port: int) -> bool:
        try:
            info = self.node(port).execute_command("CLUSTER", "INFO").decode()
        except redis.RedisError:
            return False
        return "cluster_state:ok" in info

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()


def _cluster_port() -> int:
    # A cluster node also listens on port + 10000 (the cluster bus): stay at or below 55535.
    while True:
        port = free_port()
        if port <= 55535 and _bus_free(port + 10000):
            return port


def _bus_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def cluster_start(directory: Path, *, node_timeout_ms: int = 1000) -> Cluster:
    ports = [_cluster_port() for _ in range(6)]
    cluster = Cluster(ports)
    try:
        for port in ports:
            node_dir = directory / str(port)
            node_dir.mkdir()
            cmd = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)]
            cmd += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            cmd += ["--cluster-node-timeout", str(node_timeout_ms), "--save", ""]
            cmd += ["--appendonly", "yes", "--appendfsync", "everysec", "--daemonize", "no"]
            cluster.procs[port] = Proc(cmd, name=f"redis-{port}").start()
        for port in ports:
            _wait(lambda p=port: _pings(p), f"redis {port}")
        subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), *REPLICAS],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for port in ports:
            _wait(lambda p=port: cluster.state_ok(p), f"cluster state on {port}", timeout=30)
        # A replica can only be promoted once it has synced with its master: a master killed
        # before that (a fresh cluster on a busy machine) is never failed over.
        for port in ports:
            _wait(lambda p=port: _synced(p), f"replica sync on {port}", timeout=30)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _synced(port: int) -> bool:
    """True for a master, or for a replica whose link to its master is up."""
    try:
        info = redis.Redis(port=port, socket_timeout=1).info("replication")
    except redis.RedisError:
        return False
    return info.get("role") == "master" or info.get("master_link_status") == "up"


def _pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _wait(condition, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready")
        time.sleep(0.05)


@dataclass
class SentinelSet:
    """One master, one replica and three sentinels watching them as `name`."""

    name: str
    master: int
    replica: int
    sentinels: list[int]
    procs: dict[int, Proc] = field(default_factory=dict)

    @property
    def env_value(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinels)

    def current_master(self) -> int | None:
        for port in self.sentinels:
            try:
                reply = redis.Redis(port=port, socket_timeout=1).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name
                )
            except redis.RedisError:
                continue
            if reply:
                return int(reply[1])
        return None

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()


def sentinel_start(
    directory: Path, name: str = "alephant", *, down_after_ms: int = 1000
) -> SentinelSet:
    """1 master + 1 replica + 3 sentinels. Sentinel promotes only a replica whose link to the
    master has been down less than about 10 x `down_after_ms` at the failover: a test that cuts
    the replica off well before killing the master needs a longer `down_after_ms`."""
    master, replica = _cluster_port(), _cluster_port()
    sentinel_ports = [_cluster_port() for _ in range(3)]
    topo = SentinelSet(name, master, replica, sentinel_ports)
    try:
        for port, extra in ((master, []), (replica, ["--replicaof", "127.0.0.1", str(master)])):
            node_dir = directory / str(port)
            node_dir.mkdir()
            cmd = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(node_dir)]
            cmd += ["--save", "", "--appendonly", "yes", *extra]
            topo.procs[port] = Proc(cmd, name=f"redis-{port}").start()
        for port in (master, replica):
            _wait(lambda p=port: _pings(p), f"redis {port}")
        for port in sentinel_ports:
            conf = directory / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {name} 127.0.0.1 {master} 2\n"
                f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                f"sentinel failover-timeout {name} 3000\n"
                f"sentinel parallel-syncs {name} 1\n"
            )
            cmd = [REDIS_SERVER, str(conf), "--sentinel"]
            topo.procs[port] = Proc(cmd, name=f"sentinel-{port}").start()
        for port in sentinel_ports:
            _wait(lambda p=port: _pings(p), f"sentinel {port}")
        _wait(lambda: _replica_synced(replica), "replica sync", timeout=20)
        # A failover needs 2 of 3 sentinels to vote for a replica they know: wait until each
        # one has found the other two (hello messages, every 2 s) and the replica, or a master
        # killed early in a test is never replaced.
        for port in sentinel_ports:
            _wait(lambda p=port: _sentinel_ready(p, name), f"sentinel {port} peers", timeout=30)
    except BaseException:
        topo.stop()
        raise
    return topo


def _sentinel_ready(port: int, name: str) -> bool:
    try:
        raw = redis.Redis(port=port, socket_timeout=1).execute_command("SENTINEL", "MASTER", name)
    except redis.RedisError:
        return False
    if isinstance(raw, list):  # RESP2 flat list of field, value
        raw = dict(zip(raw[::2], raw[1::2], strict=True))
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return fields.get("num-other-sentinels") == "2" and fields.get("num-slaves") == "1"


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _replica_synced(port: int) -> bool:
    try:
        info = redis.Redis(port=port, socket_timeout=1).info("replication")
    except redis.RedisError:
        return False
    return info.get("master_link_status") == "up"
