"""The gateway's request path helpers: raw ASGI I/O, snapshot cache, routing. No Django."""
