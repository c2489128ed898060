"""Small aiohttp upstreams of our own for the end-to-end gateway tests.

Each test module that needs a hostile or fake provider subclasses `ThreadedUpstream`, says which
routes it answers, and runs it with `running(...)`. The server has its own event loop in a daemon
thread, so the (synchronous) tests and the gateway process can both call it on a free port.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from aiohttp import web

from tests.gateway.servers import free_port

U = TypeVar("U", bound="ThreadedUpstream")


class ThreadedUpstream:
    """An aiohttp app on its own loop in a thread; by default every POST goes to `handle`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        self.routes(app)
        self.runner = runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()


@contextmanager
def running(server: U) -> Iterator[U]:
    """Start `server` in a daemon thread, yield it once it listens, then shut it down."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert server.ready.wait(5)
    try:
        yield server
    finally:
        assert server.runner is not None
        asyncio.run_coroutine_threadsafe(server.runner.cleanup(), server.loop).result(5)
        server.loop.call_soon_threadsafe(server.loop.stop)
        thread.join(5)


def provider_keys_point_at(
    gw, upstream: ThreadedUpstream, *, families: Iterable[str], name: str, secret: str
) -> None:
    """One provider key per family in `gw`'s workspace, named `{name}-{family}`, aimed at
    `upstream` (Anthropic's base URL has no `/v1`; the OpenAI-compatible ones do)."""
    # Django models: imported only once a test (and its DB) is running.
    from gateway.services.keys import provider_key_create
    from workspaces.tenancy import workspace_scope

    with workspace_scope(gw.cast.workspace.pk):
        for family in families:
            base = upstream.url if family == "anthropic" else upstream.url + "/v1"
            provider_key_create(
                workspace=gw.cast.workspace,
                provider=family,
                name=f"{name}-{family}",
                secret=f"sk-{secret}-{family}-0000",
                base_url=base,
            )
