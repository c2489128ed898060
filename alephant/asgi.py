"""ASGI entry point: `/v1/*` goes to the raw gateway app, everything else to Django.

Run with `uvicorn alephant.asgi:application`. Production may run the gateway alone with
`uvicorn gateway.asgi:application` (see README, "Scaling out").
"""

from __future__ import annotations

import os

from alephant.env import load_dotenv

load_dotenv()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alephant.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_application = get_asgi_application()

try:
    from gateway.asgi import application as gateway_application
except ImportError:  # the gateway app lands with its own issue
    gateway_application = None


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        if gateway_application is not None:
            return await gateway_application(scope, receive, send)
        message = await receive()
        while message["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope.get("path", "")
    if gateway_application is not None and (path == "/v1" or path.startswith("/v1/")):
        return await gateway_application(scope, receive, send)
    return await django_application(scope, receive, send)
