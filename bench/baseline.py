"""A bare pass-through proxy: the same server and client stack as the gateway, and nothing else
(no auth, no enforcement, no costing, no usage queue). `make bench` compares against it.

    BENCH_UPSTREAM=http://127.0.0.1:9100 uvicorn bench.baseline:application
"""

from __future__ import annotations

import os

import aiohttp

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:9100")
_session: aiohttp.ClientSession | None = None


async def application(scope, receive, send):
    global _session
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0),
                    auto_decompress=False,
                    skip_auto_headers=("User-Agent",),
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _session is not None
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    async with _session.post(
        UPSTREAM + scope["path"],
        data=body,
        headers={"content-type": "application/json", "authorization": "Bearer sk-bench"},
    ) as resp:
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [(b"content-type", resp.headers.get("content-type", "").encode())],
            }
        )
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
