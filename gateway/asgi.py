"""The gateway's ASGI application (`/v1/*`), mounted by `alephant/asgi.py`.

Standalone for scale-out: `uvicorn gateway.asgi:application --workers N`. Every process is
complete on its own: this module sets Django up itself (the cold-path loaders read Postgres
through the ORM), then injects the loaders of `gateway.loader` into the Django-free hot path
(`gateway.hotpath`). This is the one place the two meet, by plain imports.
"""

from __future__ import annotations

import os

from alephant.env import load_dotenv

load_dotenv()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alephant.settings.dev")

import django  # noqa: E402

django.setup()  # a no-op when `alephant/asgi.py` already set Django up

from gateway.hotpath.app import Config, Gateway  # noqa: E402
from gateway.loader import ledger_loader, load_snapshot  # noqa: E402


def build_application(**kwargs) -> Gateway:
    return Gateway(Config.from_env(), loader=load_snapshot, counter_loader=ledger_loader, **kwargs)


application = build_application()
