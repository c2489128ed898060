"""The fast, non-Python side of `make bench`: nginx answering a canned chat completion (JSON) and a
canned SSE stream with `return 200` (no disk, no upstream logic), a paced stream (`/paced/`: one
event every 1 ms, nginx's echo module doing the pacing with its own timers, so no Python pacer
skews the direct-vs-gateway comparison), and a private `redis-server`, all on loopback in a
temporary directory, so the gateway's Redis CPU is its own and the upstream is never the bottleneck.
`ensure_tool` installs wrk/nginx from Debian when missing (as `make browser`
does chromium)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.gateway.servers import Proc, free_port

USAGE = '"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}'
COMPLETION = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1764547200,'
    '"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant",'
    '"content":"Hello! How can I help you today?"},"finish_reason":"stop"}],' + USAGE + "}"
)
_CHUNK = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764547200,'
    '"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]}'
)
_WORDS = ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")
_TAIL = (
    'data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764547200,'
    '"model":"gpt-4o-mini","choices":[],' + USAGE + "}\n\ndata: [DONE]\n\n"
)
SSE = "".join("data: " + _CHUNK % w + "\n\n" for w in _WORDS) + _TAIL
# The paced stream: PACED_EVENTS content events, each flushed then followed by a 1 ms sleep, then
# the usage event. ~100 ms in all, so a gateway's fixed per-call cost shows as a small share and
# what the % measures is the relay adding delay per event.
PACED_EVENTS = 100
PACED_GAP_S = 0.001
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _paced_location() -> str:
    event = _quoted("data: " + _CHUNK % "tok" + "\n\n")
    steps = f"echo -n {event}; echo_flush; echo_sleep {PACED_GAP_S};" * PACED_EVENTS
    return (
        "location /paced/ { default_type text/event-stream; echo_read_request_body; "
        f"{steps} echo -n {_quoted(_TAIL)}; }}"
    )


def ensure_tool(binary: str, package: str) -> str:
    found = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if os.path.exists(f"/usr/sbin/{binary}") else None
    )
    if found:
        return found
    print(f"[bench] installing Debian {package} (once per machine)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env, check=True)
    return shutil.which(binary) or f"/usr/sbin/{binary}"


def _nginx_conf(tmp: Path, port: int) -> str:
    temp = " ".join(
        f"{name}_temp_path {tmp}/{name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
load_module {ECHO_MODULE};
worker_processes 1; master_process off; daemon off; pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s; {temp}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location /json/ {{ default_type application/json; return 200 {_quoted(COMPLETION)}; }}
    location /sse/ {{ default_type text/event-stream; return 200 {_quoted(SSE)}; }}
    {_paced_location()}
  }}
}}
"""


@dataclass
class MockStack:
    """nginx + redis-server in one temporary directory; `stop()` ends both and removes it."""

    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="alephant-bench-")))
    procs: list[Proc] = field(default_factory=list)
    nginx_port: int = 0
    redis_port: int = 0

    def start(self) -> MockStack:
        nginx = ensure_tool("nginx", "nginx-light")
        if not os.path.exists(ECHO_MODULE):
            ensure_tool(ECHO_MODULE, "libnginx-mod-http-echo")
        ensure_tool("redis-server", "redis-server")
        self.nginx_port, self.redis_port = free_port(), free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(_nginx_conf(self.tmp, self.nginx_port))
        self.procs.append(Proc([nginx, "-p", str(self.tmp), "-c", str(conf)], name="nginx").start())
        redis_cmd = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        redis_cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self.procs.append(Proc(redis_cmd, name="redis").start())
        deadline = time.time() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.redis_port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            if time.time() > deadline:
                raise TimeoutError("bench redis-server did not come up")
            time.sleep(0.05)
        return self

    @property
    def upstream(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def redis_pid(self) -> int:
        proc = self.procs[1].proc
        assert proc is not None
        return proc.pid

    @property
    def nginx_pid(self) -> int:
        proc = self.procs[0].proc
        assert proc is not None
        return proc.pid

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
