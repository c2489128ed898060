"""The shipped process files (`deploy/systemd/*`, `deploy/Procfile`) start real things:
`systemd-analyze verify` accepts every unit (paths pointed at this checkout), and every command
names a real management command, ASGI module or Celery app with options its CLI knows. The
nginx example's /v1 location keeps what streaming needs."""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
from django.core.management import get_commands

from tests.gateway.servers import ROOT

DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").iterdir())
INSTANCES = {"alephant-gateway@.service": "8101", "alephant-ledger-writer@.service": "1"}
PROCESSES = {"web", "gateway", "ledger", "worker", "beat"}


def exec_starts() -> dict[str, list[str]]:
    """Every ExecStart in the units and every Procfile line, split like a shell would."""
    found = {}
    for unit in UNITS:
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart="):
                found[unit.name] = shlex.split(line.removeprefix("ExecStart="))
    for line in (DEPLOY / "Procfile").read_text().splitlines():
        if line and not line.startswith("#"):
            name, command = line.split(":", 1)
            found[f"Procfile:{name}"] = shlex.split(command)
    return found


@cache
def cli_help(*args: str) -> str:
    return subprocess.run(
        [sys.executable, *args, "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def check_command(argv: list[str]) -> None:
    assert Path(argv[0]).name == "python", argv
    if argv[1] == "manage.py":
        assert argv[2] in get_commands(), argv
        return
    assert argv[1] == "-m", argv
    flags = [a.split("=")[0] for a in argv if a.startswith("--")]
    if argv[2] == "uvicorn":
        module, attr = next(a for a in argv[3:] if ":" in a).split(":")
        spec = importlib.util.find_spec(module)
        assert spec and spec.origin, module
        assert re.search(
            rf"^(?:{attr} =|(?:async )?def {attr}\()", Path(spec.origin).read_text(), re.M
        ), (module, attr)
        known = cli_help("-m", "uvicorn")
    else:
        assert argv[2:5] in (["celery", "-A", "alephant"],), argv
        assert importlib.util.find_spec("alephant.celery"), argv
        known = cli_help("-m", "celery", "-A", "alephant", argv[5])
    for flag in flags:
        assert re.search(rf"(^|[\s,]){re.escape(flag)}\b", known, re.M), (flag, argv)


def test_every_process_has_a_unit_and_a_procfile_line():
    starts = exec_starts()
    assert {k.split(":", 1)[1] for k in starts if k.startswith("Procfile:")} == PROCESSES
    assert {u.name for u in UNITS if u.suffix == ".service"} == {
        "alephant-web.service",
        "alephant-gateway@.service",
        "alephant-ledger-writer@.service",
        "alephant-worker.service",
        "alephant-beat.service",
    }


@pytest.mark.parametrize("name", sorted(exec_starts()))
def test_each_command_exists_with_options_its_cli_knows(name):
    check_command(exec_starts()[name])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    python = Path(sys.executable)
    for unit in UNITS:
        text = unit.read_text().replace("/opt/alephant/.venv/bin/python", str(python))
        text = text.replace("/opt/alephant", str(ROOT))
        instance = INSTANCES.get(unit.name)
        name = unit.name.replace("@.", f"@{instance}.") if instance else unit.name
        (tmp_path / name).write_text(text)
    names = sorted(str(p) for p in tmp_path.iterdir() if p.suffix == ".service")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True
    )
    # Any complaint (unknown key, bad value, missing binary) is printed: there must be none.
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_nginx_v1_location_streams_and_keeps_connections():
    text = (DEPLOY / "nginx" / "alephant.conf").read_text()
    upstream = re.search(r"upstream alephant_gateway \{(.*?)\}", text, re.S)
    assert upstream and len(re.findall(r"^\s*server ", upstream.group(1), re.M)) == 2
    assert re.search(r"^\s*keepalive \d+;", upstream.group(1), re.M)
    v1 = re.search(r"location /v1/ \{(.*?)\}", text, re.S)
    assert v1, "no /v1/ location"
    directives = {line.strip() for line in v1.group(1).splitlines() if not line.strip()[:1] == "#"}
    for needed in (
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_buffering off;",
        "proxy_request_buffering off;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_read_timeout 600s;",
    ):
        assert needed in directives, needed
