"""The gateway's ASGI application (`/v1/*`), mounted by `alephant/asgi.py`.

Standalone for scale-out: `uvicorn gateway.asgi:application --workers N`. The snapshot loader
(Django side, used only on a Redis miss) is named by `ALEPHANT_SNAPSHOT_LOADER` and imported
when first needed, so nothing on the request path imports Django.
"""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

from gateway.proxy import Config, Gateway

DEFAULT_LOADER = "gateway.snapshots:load_snapshot"
_lock = threading.Lock()
_loader: Any = None


def _resolve_loader() -> Any:
    global _loader
    with _lock:
        if _loader is None:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alephant.settings")
            django = importlib.import_module("django")
            apps = importlib.import_module("django.apps").apps
            if not apps.ready:
                django.setup()
            path = os.environ.get("ALEPHANT_SNAPSHOT_LOADER", DEFAULT_LOADER)
            module, _, name = path.partition(":")
            _loader = getattr(importlib.import_module(module), name)
    return _loader


def load_snapshot(kind: str, ident: str) -> dict | None:
    """Runs in a worker thread on a Redis miss: build the snapshot from Postgres."""
    loader = _resolve_loader()
    try:
        return loader(kind, ident)
    finally:
        importlib.import_module("django.db").close_old_connections()


def build_application(**kwargs: Any) -> Gateway:
    try:
        from alephant.env import load_dotenv

        load_dotenv()
    except ImportError:  # pragma: no cover
        pass
    return Gateway(Config.from_env(), loader=load_snapshot, **kwargs)


application = build_application()
