"""A tiny OTLP/HTTP collector for tests: decodes every `/v1/traces` and `/v1/metrics` body with
`opentelemetry-proto` (the reference schema), in a thread of the test process."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.gateway.servers import free_port


class OtlpReceiver:
    def __init__(self, *, status: int = 200) -> None:
        self.port = free_port()
        self.status = status  # what it answers (a test may flip it to 500 and back)
        self.spans: list = []
        self.resources: list = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self.posts = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.listening = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metric_posts(self) -> int:
        return len(self.metric_requests)

    async def _traces(self, request: web.Request) -> web.Response:
        self.posts += 1
        if self.status != 200:
            return web.Response(status=self.status)
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            self.resources.append(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(scope_spans.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def _metrics(self, request: web.Request) -> web.Response:
        if self.status != 200:
            return web.Response(status=self.status)
        self.metric_requests.append(ExportMetricsServiceRequest.FromString(await request.read()))
        return web.Response(body=b"", content_type="application/x-protobuf")

    def latest_metrics(self) -> dict:
        """{metric name: [data points]} from the latest metrics post (cumulative totals)."""
        found: dict = {}
        if self.metric_requests:
            for rm in self.metric_requests[-1].resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        found[metric.name] = list(metric.histogram.data_points)
        return found

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_post("/v1/metrics", self._metrics)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        self.loop.run_until_complete(site.start())
        self.listening.set()
        self.loop.run_forever()

    def start(self) -> OtlpReceiver:
        """Returns once the socket listens: an exporter posting at once must not be refused (a
        refused batch is dropped, as it would be by a real exporter, and the test would miss it)."""
        self.thread.start()
        if not self.listening.wait(10):
            raise RuntimeError(f"the OTLP receiver did not listen on {self.port} within 10 s")
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def attrs(item) -> dict:
    """A span's or data point's attributes as {key: python value}."""
    out = {}
    for kv in item.attributes:
        out[kv.key] = getattr(kv.value, kv.value.WhichOneof("value"))
    return out
