"""OTLP/HTTP delivery for `otel.py`: the standard `OTEL_*` settings, one keep-alive HTTP
connection per signal, and the background thread that drains the span queue and sends the
metrics, off the request path.

The thread wakes every `OTEL_BSP_SCHEDULE_DELAY` ms (or as soon as a batch is full), encodes up
to `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans per POST, and every `OTEL_METRIC_EXPORT_INTERVAL` ms
posts the metrics. A batch the collector refuses or cannot take (after one reconnect, for a
keep-alive connection the collector closed) is dropped and counted: telemetry never queues
without bound or slows the calls it describes. Like every background loop here it survives any
error it meets.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

logger = logging.getLogger("alephant.gateway")
DEFAULT_ENDPOINT = "http://localhost:4318"


def _ms(env: Mapping[str, str], name: str, default: int) -> float:
    try:
        return max(float(env.get(name) or default), 1.0) / 1000
    except ValueError:
        return default / 1000


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return max(int(env.get(name) or default), 1)
    except ValueError:
        return default


def parse_pairs(text: str) -> dict[str, str]:
    """`k1=v1,k2=v2` (URL-encoded values), the form of OTEL_EXPORTER_OTLP_HEADERS and
    OTEL_RESOURCE_ATTRIBUTES; malformed items are skipped."""
    pairs = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            pairs[unquote(name.strip())] = unquote(value.strip())
    return pairs


@dataclass
class Settings:
    traces_url: str = DEFAULT_ENDPOINT + "/v1/traces"
    metrics_url: str = DEFAULT_ENDPOINT + "/v1/metrics"
    traces_headers: dict[str, str] = field(default_factory=dict)
    metrics_headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    compression: str = ""  # "gzip" or none
    schedule_delay_s: float = 5.0
    max_queue: int = 2048
    batch_size: int = 512
    metric_interval_s: float = 60.0
    traces_on: bool = True
    metrics_on: bool = True
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0
    resource: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        base = (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        headers = parse_pairs(env.get("OTEL_EXPORTER_OTLP_HEADERS") or "")
        resource = parse_pairs(env.get("OTEL_RESOURCE_ATTRIBUTES") or "")
        resource["service.name"] = (
            env.get("OTEL_SERVICE_NAME") or resource.get("service.name") or "alephant-gateway"
        )
        try:
            ratio = float(env.get("OTEL_TRACES_SAMPLER_ARG") or 1.0)
        except ValueError:
            ratio = 1.0
        return cls(
            traces_url=env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or base + "/v1/traces",
            metrics_url=env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or base + "/v1/metrics",
            traces_headers=parse_pairs(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or "")
            or headers,
            metrics_headers=parse_pairs(env.get("OTEL_EXPORTER_OTLP_METRICS_HEADERS") or "")
            or headers,
            timeout_s=_ms(env, "OTEL_EXPORTER_OTLP_TIMEOUT", 10_000),
            compression=(env.get("OTEL_EXPORTER_OTLP_COMPRESSION") or "").strip().lower(),
            schedule_delay_s=_ms(env, "OTEL_BSP_SCHEDULE_DELAY", 5000),
            max_queue=_int(env, "OTEL_BSP_MAX_QUEUE_SIZE", 2048),
            batch_size=_int(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512),
            metric_interval_s=_ms(env, "OTEL_METRIC_EXPORT_INTERVAL", 60_000),
            traces_on=(env.get("OTEL_TRACES_EXPORTER") or "otlp").lower() != "none",
            metrics_on=(env.get("OTEL_METRICS_EXPORTER") or "otlp").lower() != "none",
            sampler=(env.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower(),
            sampler_arg=min(max(ratio, 0.0), 1.0),
            resource=resource,
        )


class Poster:
    """POSTs protobuf bodies to one OTLP/HTTP URL over one keep-alive connection."""

    def __init__(self, url: str, headers: dict[str, str], *, timeout_s: float, gzip_on: bool):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout_s = timeout_s
        self.gzip_on = gzip_on
        self.headers = {"content-type": "application/x-protobuf", **headers}
        if gzip_on:
            self.headers["content-encoding"] = "gzip"
        self._conn: http.client.HTTPConnection | None = None
        self._quiet_until = 0.0  # a collector that is down is logged once a minute, not per batch

    def _warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now >= self._quiet_until:
            self._quiet_until = now + 60
            logger.warning(message, *args)

    def _connect(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self._conn = kind(self.host, self.port, timeout=self.timeout_s)
        return self._conn

    def forget(self) -> None:
        """In a forked child: the connection is the parent's; open our own when needed."""
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post(self, body: bytes) -> bool:
        """True when the collector took it (2xx). A connection error is retried once on a new
        connection (the collector may have closed an idle keep-alive one)."""
        if self.gzip_on:
            body = gzip.compress(body, compresslevel=1)
        for _attempt in range(2):
            try:
                conn = self._conn or self._connect()
                conn.request("POST", self.path, body, self.headers)
                response = conn.getresponse()
                response.read()
                if response.will_close:
                    self.close()
                if 200 <= response.status < 300:
                    return True
                self._warn("otlp: %s answered %s", self.path, response.status)
                return False
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                error = exc
        self._warn("otlp: cannot post to %s:%s%s: %r", self.host, self.port, self.path, error)
        return False


class ExportThread:
    """Runs `drain()` (send queued spans; returns how many it popped) every `delay_s` or when
    woken, and `send_metrics()` every `metric_interval_s` and once more at `stop()`."""

    def __init__(
        self,
        drain: Callable[[], int],
        send_metrics: Callable[[], None] | None,
        *,
        delay_s: float,
        metric_interval_s: float,
    ) -> None:
        self.drain = drain
        self.send_metrics = send_metrics
        self.delay_s = delay_s
        self.metric_interval_s = metric_interval_s
        self.start()

    def start(self) -> None:
        """Also in a forked child (the thread does not survive a fork): `otel.OtelExport`."""
        self.wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="otlp-export", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_metrics = time.monotonic() + self.metric_interval_s
        while True:
            stopping = self._stopping
            wait = self.delay_s
            if self.send_metrics is not None:
                wait = min(wait, max(next_metrics - time.monotonic(), 0.0))
            if not stopping:
                self.wake.wait(wait)
                self.wake.clear()
            try:
                self.drain()
                if self.send_metrics is not None and (stopping or time.monotonic() >= next_metrics):
                    next_metrics = time.monotonic() + self.metric_interval_s
                    self.send_metrics()
            except Exception:  # the loop must outlive any one bad batch
                logger.exception("otlp: export failed")
            if stopping:
                return

    def stop(self, timeout_s: float = 5.0) -> None:
        """Drain what is queued, send the metrics a last time, and end the thread."""
        self._stopping = True
        self.wake.set()
        self._thread.join(timeout_s)
