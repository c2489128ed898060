"""The gateway's configuration: read ONCE from the environment into a frozen object.

Nothing on the request path reads `os.environ`; every knob is here, with a safe default for
local runs (documented in README, "Configuration").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.egress import EgressPolicy, parse_allow_list
from gateway.hotpath import cache

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
INSECURE_KEY_HASH_SECRET = "insecure-local-development-key-change-me"
# The repository's (git-ignored) `.run/`: writable for local runs; set the variable in production.
DEFAULT_SPOOL_DIR = str(Path(__file__).resolve().parents[2] / ".run" / "spool")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    return int(value) if value else default


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    return float(value) if value else default


@dataclass(frozen=True)
class Config:
    key_hash_secret: str
    redis_url: str = "redis://127.0.0.1:63799/0"
    max_body_bytes: int = 8 * 1024 * 1024
    retries: int = 1
    connect_timeout_s: float = 10.0
    default_max_output_tokens: int = 4096
    pool_size: int = 1000
    snapshot_cache_ttl: float = 1.0  # seconds a key/workspace snapshot is trusted in process
    fail_open: bool = False  # admit without checks when Redis is down (off: 503)
    enforcement: bool = True  # False only for benchmarks
    loop_max_repeats: int = 8
    loop_window_s: int = 60
    reservation_ttl_s: float = 900.0
    cache_ttl_s: int = cache.DEFAULT_TTL_S
    cache_max_bytes: int = cache.MAX_ENTRY_BYTES
    # Where upstream connections may go (`core.egress`): public addresses only by default.
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    # Usage events Redis would not take, fsynced here until replayed (`spool.py`).
    usage_spool_dir: str = DEFAULT_SPOOL_DIR
    # Stricter durability (`replication.py`): WAIT for this many replicas after the settle,
    # spooling the usage too when fewer acknowledge within the timeout. 0: off.
    redis_wait_replicas: int = 0
    redis_wait_timeout_ms: int = 200
    # Observability (gateway/hotpath/telemetry.py; README "Observability").
    metrics_token: str = ""  # set: /metrics wants `Authorization: Bearer <token>`
    metrics_per_workspace: bool = False  # a `workspace` label on every series
    log_format: str = "text"  # "json": one JSON line per call on stdout
    log_bodies: bool = False  # the request body in that line
    otel_endpoint: str = ""  # OTEL_EXPORTER_OTLP_ENDPOINT: one span per call when set
    # Freeze startup objects and collect less often (`gctune.py`); on in served processes
    # (`from_env`), off for a Config built in code (tests share their process).
    gc_tuning: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        secret = env.get("ALEPHANT_KEY_HASH_SECRET") or env.get("DJANGO_SECRET_KEY")
        return cls(
            key_hash_secret=secret or INSECURE_KEY_HASH_SECRET,
            redis_url=env.get("REDIS_URL") or cls.redis_url,
            max_body_bytes=_int(env, "ALEPHANT_MAX_BODY_BYTES", cls.max_body_bytes),
            retries=_int(env, "ALEPHANT_UPSTREAM_RETRIES", cls.retries),
            connect_timeout_s=float(_int(env, "ALEPHANT_UPSTREAM_CONNECT_TIMEOUT_S", 10)),
            default_max_output_tokens=_int(
                env, "ALEPHANT_DEFAULT_MAX_OUTPUT_TOKENS", cls.default_max_output_tokens
            ),
            pool_size=_int(env, "ALEPHANT_UPSTREAM_POOL_SIZE", cls.pool_size),
            snapshot_cache_ttl=_float(env, "ALEPHANT_SNAPSHOT_CACHE_TTL", cls.snapshot_cache_ttl),
            fail_open=(env.get("ALEPHANT_FAIL_OPEN") or "").lower() in _TRUE,
            enforcement=(env.get("ALEPHANT_ENFORCEMENT") or "1").lower() not in _FALSE,
            loop_max_repeats=_int(env, "ALEPHANT_LOOP_MAX_REPEATS", cls.loop_max_repeats),
            loop_window_s=_int(env, "ALEPHANT_LOOP_WINDOW_S", cls.loop_window_s),
            reservation_ttl_s=_float(env, "ALEPHANT_RESERVATION_TTL_S", cls.reservation_ttl_s),
            cache_ttl_s=_int(env, "ALEPHANT_CACHE_TTL_SECONDS", cls.cache_ttl_s),
            cache_max_bytes=_int(env, "ALEPHANT_CACHE_MAX_BYTES", cls.cache_max_bytes),
            egress=_egress(env),
            usage_spool_dir=env.get("ALEPHANT_USAGE_SPOOL_DIR") or cls.usage_spool_dir,
            redis_wait_replicas=_int(env, "ALEPHANT_REDIS_WAIT_REPLICAS", 0),
            redis_wait_timeout_ms=_int(env, "ALEPHANT_REDIS_WAIT_TIMEOUT_MS", 200),
            metrics_token=env.get("ALEPHANT_METRICS_TOKEN") or "",
            metrics_per_workspace=(env.get("ALEPHANT_METRICS_PER_WORKSPACE") or "") in _TRUE,
            log_format=(env.get("ALEPHANT_LOG_FORMAT") or "text").lower(),
            log_bodies=(env.get("ALEPHANT_LOG_BODIES") or "").lower() in _TRUE,
            otel_endpoint=env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or "",
            gc_tuning=(env.get("ALEPHANT_GC_TUNING") or "1").lower() not in _FALSE,
        )


def _egress(env: Mapping[str, str]) -> EgressPolicy:
    """The same rule as Django's settings (`ALEPHANT_ALLOW_PRIVATE_UPSTREAMS` defaults to
    `DJANGO_DEBUG`), so a key the API accepted is one the gateway will call."""
    flag = (env.get("ALEPHANT_ALLOW_PRIVATE_UPSTREAMS") or "").strip().lower()
    if not flag:
        flag = (env.get("DJANGO_DEBUG") or "").strip().lower()
    return EgressPolicy(
        allow_private=flag in _TRUE, allow=parse_allow_list(env.get("ALEPHANT_EGRESS_ALLOW"))
    )
