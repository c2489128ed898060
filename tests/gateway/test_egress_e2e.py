"""The gateway's own upstream connections obey the egress policy (issue 12), end to end.

A gateway process started the way production runs it (no `ALEPHANT_ALLOW_PRIVATE_UPSTREAMS`)
with `ALEPHANT_EGRESS_ALLOW` naming only the simulator: a provider key whose base URL is a DNS
name resolving to a loopback address, or a loopback address not on the list, is refused with a
clear 502 and nothing connects to it. Any gateway answers a provider's redirect with a 502 and
never follows it (the workspace's key would go along).
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import urlsplit

import httpx
import pytest

from tests.gateway import servers

pytestmark = pytest.mark.slow

CHAT = (
    b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index"'
    b':0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":'
    b'{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
)


class CountingServer:
    """A bare HTTP server that counts every TCP connection it accepts and answers each request
    with one canned response (a 200 chat completion, or a 302 to `location`)."""

    def __init__(self, location: str | None = None) -> None:
        self.port = servers.free_port()
        self.location = location
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _response(self) -> bytes:
        if self.location:
            head = f"HTTP/1.1 302 Found\r\nlocation: {self.location}\r\ncontent-length: 0\r\n"
            return (head + "connection: close\r\n\r\n").encode()
        head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        head += f"content-length: {len(CHAT)}\r\nconnection: close\r\n\r\n"
        return head.encode() + CHAT

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            writer.write(self._response())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port)
        )
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> CountingServer:
        threading.Thread(target=self.run, daemon=True).start()
        assert self.ready.wait(5)
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self.server is not None
            self.server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="module")
def strict_gateway(simulator, django_db_setup, django_db_blocker):
    """A gateway process with the production egress default and only the simulator allowed."""
    with django_db_blocker.unblock():
        env = servers.test_env()
    sim = urlsplit(simulator)
    env["ALEPHANT_ALLOW_PRIVATE_UPSTREAMS"] = "0"
    env["ALEPHANT_EGRESS_ALLOW"] = f"{sim.hostname}:{sim.port}"
    proc, base = servers.start_gateway(env, app="gateway.asgi:application")
    yield base + "/v1"
    proc.kill()


@pytest.fixture
def target():
    server = CountingServer().start()
    yield server
    server.stop()


def _provider_key(gw, name: str, base_url: str) -> None:
    from gateway.services.keys import provider_key_create
    from workspaces.tenancy import workspace_scope

    # Saved under the test settings' development switch, as an admin on a dev instance could;
    # what is under test is the gateway's check at connect time.
    with workspace_scope(gw.cast.workspace.pk):
        provider_key_create(
            workspace=gw.cast.workspace,
            provider="openai",
            name=name,
            secret="sk-egress-test-0000",
            base_url=base_url,
        )


def _chat(base: str, key: str, model: str) -> httpx.Response:
    return httpx.post(
        base + "/chat/completions",
        headers={"authorization": "Bearer " + key},
        json={"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


def test_the_allow_listed_simulator_is_reachable(gw, strict_gateway):
    response = _chat(strict_gateway, gw.key, "oai/gpt-4o-mini")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_private_destination_is_refused_and_nothing_connects(gw, strict_gateway, target, host):
    _provider_key(gw, "inside", f"http://{host}:{target.port}/v1")
    response = _chat(strict_gateway, gw.key, "inside/gpt-4o-mini")
    assert response.status_code == 502, response.text
    error = response.json()["error"]
    assert error["type"] == "upstream_forbidden"
    assert "not an allowed destination" in error["message"]
    assert target.connections == 0
    # The same key through a development gateway (private upstreams allowed) does connect:
    # the refusal above is the policy, not a dead port.
    assert _chat(gw.base, gw.key, "inside/gpt-4o-mini").status_code == 200
    assert target.connections == 1


def test_a_non_canonical_address_is_refused_and_nothing_connects(gw, target):
    _provider_key(gw, "odd", f"http://127.1:{target.port}/v1")
    # Even where private upstreams are allowed: the client refuses a non-canonical IPv4 URL.
    response = _chat(gw.base, gw.key, "odd/gpt-4o-mini")
    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"] == "upstream_invalid_url"
    assert target.connections == 0


def test_a_redirect_is_not_followed(gw, target):
    source = CountingServer(location=target.url + "/v1/chat/completions").start()
    try:
        _provider_key(gw, "moved", source.url + "/v1")
        for stream in (False, True):
            response = httpx.post(
                gw.base + "/chat/completions",
                headers={"authorization": "Bearer " + gw.key},
                json={
                    "model": "moved/gpt-4o-mini",
                    "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}],
                },
                timeout=30,
            )
            assert response.status_code == 502, response.text
            assert response.json()["error"]["type"] == "upstream_redirect"
        assert source.connections == 2  # one attempt each: a redirect is not retried
        assert target.connections == 0
    finally:
        source.stop()
