"""Find or start the services Alephant needs: PostgreSQL and Redis.

    python3 devtools/services.py up      # start what is missing, write .env
    python3 devtools/services.py down    # stop what `up` started (by recorded pid)
    python3 devtools/services.py status

* `DATABASE_URL` set in the environment -> that database is used as is (and
  `DATABASE_OWNER_URL`, when set, for migrations). Otherwise a private PostgreSQL cluster is
  created from the system binaries (Debian's `postgresql` is installed when missing), run as the
  `postgres` user, in a private data folder and on its own port, with two roles: the owner that
  migrates and the app role that row-level security applies to.
* `REDIS_URL` set -> used as is. Otherwise a private `redis-server` (installed from Debian when
  missing) on its own port with append-only persistence.

Only the standard library is used: this runs before the virtualenv exists.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"
ENV_FILE = BASE_DIR / ".env"
STATE_FILE = RUN_DIR / "services.json"
# Data lives outside the checkout when the checkout is not reachable by the postgres user
# (e.g. under /root); one folder per checkout so two clones never share a cluster.
_TAG = hashlib.sha1(str(BASE_DIR).encode(), usedforsecurity=False).hexdigest()[:8]
SERVICE_DIR = Path(os.environ.get("ALEPHANT_SERVICE_DIR", f"/var/tmp/alephant-{_TAG}"))  # noqa: S108 (postgres must reach it)
PG_PORT = int(os.environ.get("ALEPHANT_PG_PORT", "54329"))
REDIS_PORT = int(os.environ.get("ALEPHANT_REDIS_PORT", "63799"))
OWNER, APP = "alephant_owner", "alephant_app"


def log(msg: str) -> None:
    print(f"[services] {msg}", flush=True)


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _apt_install(package: str) -> None:
    if os.geteuid() != 0:
        sys.exit(f"{package} is missing and this user cannot install it; set the URL instead")
    log(f"installing Debian package {package} (once per machine)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)


def _load_state() -> dict:
    return json.loads(STATE_FILE.read_text()) if STATE_FILE.exists() else {}


def _save_state(state: dict) -> None:
    RUN_DIR.mkdir(exist_ok=True)
    STATE_FILE.write_text(json.dumps(state, indent=2))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# --- PostgreSQL -----------------------------------------------------------------------------


def _pg_bindir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4])
    )
    if not found:
        _apt_install("postgresql")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent


def _as_pg_user(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, **kw)


def _pg_data_dir() -> Path:
    return SERVICE_DIR / "pg"


def start_postgres(state: dict) -> str:
    bindir = _pg_bindir()
    data = _pg_data_dir()
    SERVICE_DIR.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(SERVICE_DIR, pw.pw_uid, pw.pw_gid)
    if not (data / "PG_VERSION").exists():
        _pg_initdb(bindir, data)
    changed = _pg_secure_auth(data)
    if not _pg_running(bindir, data):
        state["postgres"] = _pg_start(bindir, data)
    elif changed:  # a cluster from before this rule: reload, no restart (connections stay)
        _as_pg_user([str(bindir / "pg_ctl"), "-D", str(data), "reload"], stdout=subprocess.DEVNULL)
    _pg_bootstrap(bindir)
    return f"127.0.0.1:{PG_PORT}"


def _pg_initdb(bindir: Path, data: Path) -> None:
    log(f"initdb {data}")
    _as_pg_user(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ],
        stdout=subprocess.DEVNULL,
    )


# Passwords (scram) for every role; superuser only for the OS account running the cluster (peer).
_PG_HBA = """# Written by devtools/services.py (rewritten on every `make services`).
local   all   postgres                  peer map=alephant
local   all   all                       scram-sha-256
host    all   all       127.0.0.1/32    scram-sha-256
host    all   all       ::1/128         scram-sha-256
"""


def _pg_secure_auth(data: Path) -> bool:
    """Write pg_hba.conf/pg_ident.conf; True when they changed (a running server must reload)."""
    os_user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    wanted = {"pg_hba.conf": _PG_HBA, "pg_ident.conf": f"alephant  {os_user}  postgres\n"}
    changed = False
    for name, text in wanted.items():
        path = data / name
        if _as_pg_user(["cat", str(path)], capture_output=True, text=True).stdout != text:
            _as_pg_user(["tee", str(path)], input=text, text=True, stdout=subprocess.DEVNULL)
            changed = True
    return changed


def _pg_running(bindir: Path, data: Path) -> bool:
    pidfile = data / "postmaster.pid"
    # `pg_ctl status`, not the pid file alone: a stale postmaster.pid whose pid was reused by
    # another process would otherwise look like a running server.
    return pidfile.exists() and (
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(data), "status"]
            if os.geteuid() == 0
            else [str(bindir / "pg_ctl"), "-D", str(data), "status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )


def _pg_start(bindir: Path, data: Path) -> dict:
    """Start the private server; what `state` remembers of it."""
    if _port_open(PG_PORT):
        sys.exit(f"port {PG_PORT} is taken by another process; set ALEPHANT_PG_PORT")
    log(f"starting private PostgreSQL on 127.0.0.1:{PG_PORT}")
    _as_pg_user(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(SERVICE_DIR / "pg.log"),
            "-w",
            "-o",
            f"-p {PG_PORT} -k {SERVICE_DIR} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200",
            "start",
        ],
        stdout=subprocess.DEVNULL,
    )
    pidfile = data / "postmaster.pid"
    return {
        "pid": int(pidfile.read_text().split()[0]),
        "data": str(data),
        "bindir": str(bindir),
    }


def _pg_bootstrap(bindir: Path) -> None:
    """The owner and app roles and the database, created once."""
    psql = [
        str(bindir / "psql"),
        "-h",
        str(SERVICE_DIR),
        "-p",
        str(PG_PORT),
        "-U",
        "postgres",
        "-v",
        "ON_ERROR_STOP=1",
        "-qAt",
    ]
    bootstrap = f"""
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{OWNER}') THEN
        CREATE ROLE {OWNER} LOGIN PASSWORD '{OWNER}' CREATEDB NOSUPERUSER NOBYPASSRLS;
      END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP}') THEN
        CREATE ROLE {APP} LOGIN PASSWORD '{APP}' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
      END IF;
    END $$;
    """
    _as_pg_user([*psql, "-d", "postgres", "-c", bootstrap], stdout=subprocess.DEVNULL)
    exists = _as_pg_user(
        [*psql, "-d", "postgres", "-c", "SELECT 1 FROM pg_database WHERE datname='alephant'"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not exists:
        _as_pg_user([*psql, "-d", "postgres", "-c", f"CREATE DATABASE alephant OWNER {OWNER}"])


def stop_postgres(info: dict) -> None:
    data = info.get("data")
    if data and Path(data, "postmaster.pid").exists():
        log("stopping private PostgreSQL")
        _as_pg_user(
            [str(Path(info["bindir"]) / "pg_ctl"), "-D", data, "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
        )


# --- Redis ----------------------------------------------------------------------------------


def start_redis(state: dict) -> None:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        _apt_install("redis-server")
    rdir = SERVICE_DIR / "redis"
    rdir.mkdir(parents=True, exist_ok=True)
    pidfile = rdir / "redis.pid"
    if (
        pidfile.exists()
        and _pid_alive(int(pidfile.read_text().strip() or 0))
        and _port_open(REDIS_PORT)
    ):
        return
    if _port_open(REDIS_PORT):
        sys.exit(f"port {REDIS_PORT} is taken by another process; set ALEPHANT_REDIS_PORT")
    log(f"starting private Redis on 127.0.0.1:{REDIS_PORT} (AOF on)")
    subprocess.run(
        [
            binary,
            "--port",
            str(REDIS_PORT),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(rdir),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(rdir / "redis.log"),
        ],
        check=True,
    )
    for _ in range(100):
        if pidfile.exists() and _port_open(REDIS_PORT):
            break
        time.sleep(0.05)
    state["redis"] = {"pid": int(pidfile.read_text().strip())}


def stop_redis(info: dict) -> None:
    pid = info.get("pid")
    if _pid_alive(pid):
        log("stopping private Redis")
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _pid_alive(pid):
                break
            time.sleep(0.05)


# --- .env -----------------------------------------------------------------------------------


def _read_env_file() -> dict[str, str]:
    values: dict[str, str] = {}
    if ENV_FILE.exists():
        for line in ENV_FILE.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def write_env(urls: dict[str, str]) -> None:
    current = _read_env_file()
    RUN_DIR.mkdir(exist_ok=True)
    master_file = RUN_DIR / "master.key"
    if not master_file.exists():
        master_file.write_text(secrets.token_urlsafe(32) + "\n")
        master_file.chmod(0o600)
    generated = {
        "DJANGO_SECRET_KEY": current.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(48),
        "ALEPHANT_KEY_HASH_SECRET": current.get("ALEPHANT_KEY_HASH_SECRET")
        or secrets.token_urlsafe(32),
        "ALEPHANT_MASTER_KEY_FILE": current.get("ALEPHANT_MASTER_KEY_FILE") or str(master_file),
        "DJANGO_DEBUG": current.get("DJANGO_DEBUG", "1"),
        "ALEPHANT_ALLOW_PRIVATE_UPSTREAMS": current.get("ALEPHANT_ALLOW_PRIVATE_UPSTREAMS", "1"),
    }
    merged = {**current, **urls, **generated}
    body = "# Written by `make services` (devtools/services.py). Environment variables win.\n"
    body += "".join(f"{k}={v}\n" for k, v in merged.items())
    ENV_FILE.write_text(body)
    ENV_FILE.chmod(0o600)


def up() -> None:
    state = _load_state()
    before = {name: info.get("pid") for name, info in state.items()}
    urls: dict[str, str] = {}
    if os.environ.get("DATABASE_URL"):
        log("using DATABASE_URL from the environment")
        urls["DATABASE_URL"] = os.environ["DATABASE_URL"]
        urls["DATABASE_OWNER_URL"] = os.environ.get("DATABASE_OWNER_URL", urls["DATABASE_URL"])
    else:
        hostport = start_postgres(state)
        urls["DATABASE_URL"] = f"postgres://{APP}:{APP}@{hostport}/alephant"
        urls["DATABASE_OWNER_URL"] = f"postgres://{OWNER}:{OWNER}@{hostport}/alephant"
    if os.environ.get("REDIS_URL"):
        log("using REDIS_URL from the environment")
        urls["REDIS_URL"] = os.environ["REDIS_URL"]
    else:
        start_redis(state)
        urls["REDIS_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"
    _save_state(state)
    # What *this* call started, so `make run` stops on Ctrl-C only what it brought up and leaves
    # services that were already running (another terminal's `make services`) alone.
    (RUN_DIR / "started_by_last_up.json").write_text(
        json.dumps(
            sorted(name for name, info in state.items() if info.get("pid") != before.get(name))
        )
    )
    write_env(urls)
    log(f"ready: DATABASE_URL={urls['DATABASE_URL'].split('@')[-1]} REDIS_URL={urls['REDIS_URL']}")


def down(only: list[str] | None = None) -> None:
    state = _load_state()
    if "redis" in state and (only is None or "redis" in only):
        stop_redis(state.pop("redis"))
    if "postgres" in state and (only is None or "postgres" in only):
        stop_postgres(state.pop("postgres"))
    _save_state(state)


def status() -> None:
    state = _load_state()
    for name, info in state.items():
        log(f"{name}: pid {info.get('pid')} alive={_pid_alive(info.get('pid'))}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    if command == "down" and len(sys.argv) > 2:  # down --only redis,postgres
        down(only=sys.argv[-1].split(","))
    else:
        {"up": up, "down": down, "status": status}[command]()
