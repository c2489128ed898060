"""`/metrics` of the Django app when it runs on its own (WSGI, or ASGI without the gateway).

Under `alephant.asgi` the gateway answers `/metrics` (the dispatcher sends it there). Here the
same body is built the same way (`gateway.hotpath.scrape`): the series every gateway worker wrote
to `PROMETHEUS_MULTIPROC_DIR` (when this process shares that directory) and the budget and queue
gauges read from Redis now; the same `ALEPHANT_METRICS_TOKEN` guards it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.redisclients import async_client
from gateway.hotpath.config import Config
from gateway.hotpath.scrape import CONTENT_TYPE, authorized, render

_config = Config.from_env()  # the gateway's knobs, read once like the gateway does


async def metrics(request: HttpRequest) -> HttpResponse:
    header = request.headers.get("Authorization", "").encode("latin-1")
    if not authorized(_config.metrics_token, [(b"authorization", header)]):
        response = HttpResponse(b"unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    client = async_client(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=1)
    try:
        body = await render(client, None, per_workspace=_config.metrics_per_workspace)
    finally:
        await client.aclose()
    return HttpResponse(body, content_type=CONTENT_TYPE.decode())
