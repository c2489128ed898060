"""The simulator's app: stats, reset, the model list, and every provider's routes."""

from __future__ import annotations

import argparse

import orjson
from aiohttp import web

from devtools.simulator import anthropic, billing, gemini, openai, responses
from devtools.simulator.core import SIM, Sim

routes = web.RouteTableDef()


@routes.get("/_sim/stats")
async def stats(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    return web.Response(body=orjson.dumps(sim.stats()), content_type="application/json")


@routes.post("/_sim/reset")
async def reset(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    sim.reset()
    return web.Response(body=b'{"ok":true}', content_type="application/json")


@routes.get("/v1/models")
async def models(_request: web.Request) -> web.Response:
    data = [
        {"id": m, "object": "model", "created": 0, "owned_by": "simulator"}
        for m in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small")
    ]
    return web.Response(
        body=orjson.dumps({"object": "list", "data": data}), content_type="application/json"
    )


def make_app(sim: Sim) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SIM] = sim
    for module in (openai, responses, anthropic, gemini, billing):
        app.add_routes(module.routes)
    app.add_routes(routes)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Alephant upstream simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    sim = Sim(latency_ms=args.latency_ms, fail_rate=args.fail_rate)
    # Stop within a second on SIGTERM: a `timeout` fault holds its handler for an hour, and
    # aiohttp would otherwise wait 60 s for it (every test teardown and `make run` Ctrl-C).
    web.run_app(
        make_app(sim),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=0.5,
    )


if __name__ == "__main__":
    main()
