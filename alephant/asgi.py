"""ASGI entry point: `/v1/*` goes to the raw gateway app, everything else to Django.

Run with `uvicorn alephant.asgi:application`. Production may run the gateway alone with
`uvicorn gateway.asgi:application` (see README, "Scaling out").
"""

from __future__ import annotations

import os

from alephant.env import load_dotenv

load_dotenv()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alephant.settings.dev")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

from gateway.asgi import application as gateway_application  # noqa: E402


async def application(scope, receive, send):
    if scope["type"] == "lifespan":  # the gateway owns start-up/shutdown (HTTP client, Redis)
        return await gateway_application(scope, receive, send)
    path = scope.get("path", "")
    # `/metrics` too: the gateway's series and the Redis gauges (gateway/hotpath/scrape.py).
    if path == "/v1" or path.startswith("/v1/") or path == "/metrics":
        return await gateway_application(scope, receive, send)
    return await django_application(scope, receive, send)
