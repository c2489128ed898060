"""`core.http1`, the hot path's upstream client, against real sockets: raw asyncio servers that
answer with Content-Length, chunked (split at every byte), close-delimited and hostile
responses, a TLS server with a certificate made here, and the egress policy."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.egress import EgressPolicy
from core.http1 import (
    ConnectError,
    Disconnected,
    EgressBlocked,
    Http1Client,
    InvalidURL,
    ProtocolError,
)

OPEN = EgressPolicy(allow_private=True)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """A loopback server; `handler` runs per connection. Counts connections and requests."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler, self.tls = handler, tls
        self.connections = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Server:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer, self)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}/v1/chat?x=1"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


def answer(*responses: bytes, close: bool = False, split: int = 0) -> Handler:
    """Answer each request on a connection with the next response (cycling)."""

    async def handler(reader, writer, server: Server) -> None:
        index = 0
        while True:
            await server.read_request(reader)
            data = responses[index % len(responses)]
            index += 1
            if split:
                for i in range(0, len(data), split):
                    writer.write(data[i : i + split])
                    await writer.drain()
                    await asyncio.sleep(0)
            else:
                writer.write(data)
                await writer.drain()
            if close:
                return

    return handler


OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}'
CHUNKED = (
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
    b"3;ext=1\r\ndat\r\n10\r\n" + b"x" * 16 + b"\r\n0\r\ntrailer: t\r\n\r\n"
)


def run(coro: Awaitable) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_content_length_keep_alive_and_request_shape():
    async def go():
        async with Server(answer(OK)) as server:
            client = Http1Client(OPEN)
            for _ in range(3):
                resp = await client.fetch(
                    server.url(), b'{"q":1}', {"authorization": "Bearer k"}, timeout_s=5
                )
                assert (resp.status, resp.body) == (200, b'{"a":1}')
                assert resp.headers["content-type"] == "application/json"
            await client.close()
            return server

    server = run(go())
    assert server.connections == 1 and len(server.requests) == 3
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat?x=1 HTTP/1.1"
    assert f"host: 127.0.0.1:{server.port}".encode() in lines
    assert b"authorization: Bearer k" in lines and b"content-length: 7" in lines
    assert body == b'{"q":1}'


@pytest.mark.parametrize("split", [1, 2, 5])
def test_chunked_split_anywhere_and_reused(split):
    async def go():
        async with Server(answer(CHUNKED, split=split)) as server:
            client = Http1Client(OPEN)
            bodies = [
                (await client.fetch(server.url(), b"", {}, timeout_s=5)).body for _ in range(2)
            ]
            return bodies, server.connections

    bodies, connections = run(go())
    assert bodies == [b"dat" + b"x" * 16] * 2
    assert connections == 1


def test_close_delimited_and_connection_close():
    unframed = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end"
    closing = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"

    async def go():
        results = []
        for response in (unframed, closing):
            async with Server(answer(response, close=True)) as server:
                client = Http1Client(OPEN)
                for _ in range(2):
                    results.append((await client.fetch(server.url(), b"", {}, timeout_s=5)).body)
                results.append(server.connections)
        return results

    assert run(go()) == [b"until the end", b"until the end", 2, b"ok", b"ok", 2]


def test_a_redirect_is_returned_not_followed():
    moved = b"HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/\r\ncontent-length: 0\r\n\r\n"

    async def go():
        async with Server(answer(moved)) as server:
            resp = await Http1Client(OPEN).fetch(server.url(), b"", {}, timeout_s=5)
            return resp.status, resp.headers["location"], len(server.requests)

    assert run(go()) == (302, "http://10.0.0.1/", 1)


def test_interim_100_is_skipped():
    async def go():
        async with Server(answer(b"HTTP/1.1 100 Continue\r\n\r\n" + OK, split=3)) as server:
            return (await Http1Client(OPEN).fetch(server.url(), b"", {}, timeout_s=5)).body

    assert run(go()) == b'{"a":1}'


def _idle_closer() -> Handler:
    """Answer the first request keep-alive; on the next one, close without a byte (the way a
    server that timed out the idle connection looks to a client that raced it)."""

    async def handler(reader, writer, server: Server) -> None:
        await server.read_request(reader)
        if server.connections == 1:
            writer.write(OK)
            await writer.drain()
            await server.read_request(reader)
            return
        writer.write(OK)
        await writer.drain()

    return handler


def test_a_broken_pooled_connection_is_retried_once_on_a_fresh_one():
    async def go():
        async with Server(_idle_closer()) as server:
            client = Http1Client(OPEN)
            first = await client.fetch(server.url(), b"1", {}, timeout_s=5)
            second = await client.fetch(server.url(), b"2", {}, timeout_s=5)
            return first.body, second.body, server.connections, len(server.requests)

    assert run(go()) == (b'{"a":1}', b'{"a":1}', 2, 3)


@pytest.mark.parametrize(
    "response",
    [b"", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"],
    ids=["no-byte-fresh", "cut-body"],
)
def test_a_fresh_connection_or_a_started_answer_is_not_retried(response):
    async def go():
        async with Server(answer(response, close=True)) as server:
            with pytest.raises(Disconnected):
                await Http1Client(OPEN).fetch(server.url(), b"", {}, timeout_s=5)
            return len(server.requests)

    assert run(go()) == 1


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\n" + b"x-big: " + b"a" * 70_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n" + b"x-h: 1\r\n" * 200 + b"\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
        b"SMTP 220 hello\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    ],
    ids=["huge-header", "many-headers", "bad-length", "two-lengths", "bad-chunk", "long-chunk",
         "not-http", "obs-fold"],
)  # fmt: skip
def test_hostile_answers_fail_cleanly(response):
    async def go():
        async with Server(answer(response)) as server:
            with pytest.raises(ProtocolError):
                await Http1Client(OPEN).fetch(server.url(), b"", {}, timeout_s=5)

    run(go())


def test_timeouts_total_and_per_read():
    async def silent(reader, writer, server):
        await server.read_request(reader)
        await asyncio.sleep(3)

    async def stalls(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await asyncio.sleep(3)

    async def go():
        client = Http1Client(OPEN)
        async with Server(silent) as server:
            with pytest.raises(TimeoutError):
                await client.fetch(server.url(), b"", {}, timeout_s=0.2)
            with pytest.raises(TimeoutError):
                await client.open(server.url(), b"", {}, read_timeout_s=0.2)
        async with Server(stalls) as server:
            resp = await client.open(server.url(), b"", {}, read_timeout_s=0.2)
            assert await resp.__anext__() == b"hi"
            with pytest.raises(TimeoutError):
                await resp.__anext__()
            resp.close()
        assert client._open == 0

    run(go())


def test_stream_backpressure_pauses_reading():
    size = 4 * 1024 * 1024

    async def big(reader, writer, server):
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(size // 65536):
            writer.write(b"10000\r\n" + b"z" * 65536 + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def go():
        async with Server(big) as server:
            client = Http1Client(OPEN)
            resp = await client.open(server.url(), b"", {}, read_timeout_s=5)
            await asyncio.sleep(0.3)  # a slow reader: the socket must stop being read
            conn = resp._conn
            assert conn._paused and conn._size < 2 * 1024 * 1024
            total = 0
            async for chunk in resp:
                total += len(chunk)
            return total, client._idle

    total, idle = run(go())
    assert total == size and sum(len(c) for c in idle.values()) == 1


def test_pool_limit_queues_instead_of_failing():
    async def go():
        async with Server(answer(OK, split=4)) as server:
            client = Http1Client(OPEN, limit=1)
            results = await asyncio.gather(
                *(client.fetch(server.url(), b"", {}, timeout_s=5) for _ in range(5))
            )
            return [r.body for r in results], server.connections

    bodies, connections = run(go())
    assert bodies == [b'{"a":1}'] * 5 and connections == 1


def test_egress_policy_vets_the_connected_address():
    async def go():
        async with Server(answer(OK)) as server:
            strict = Http1Client(EgressPolicy())
            with pytest.raises(EgressBlocked):
                await strict.fetch(server.url(), b"", {}, timeout_s=5)
            with pytest.raises(EgressBlocked):
                await strict.fetch(server.url("localhost"), b"", {}, timeout_s=5)
            # A public-looking name that resolves to loopback (DNS rebinding): refused.
            loop = asyncio.get_running_loop()

            async def rebinding(host, port, **kw):
                return [(2, 1, 6, "", ("127.0.0.1", port))]

            loop.getaddrinfo = rebinding  # type: ignore[method-assign]
            with pytest.raises(EgressBlocked):
                await strict.fetch(server.url("api.example.com"), b"", {}, timeout_s=5)
            allowed = Http1Client(EgressPolicy(allow=frozenset({("api.example.com", server.port)})))
            resp = await allowed.fetch(server.url("api.example.com"), b"", {}, timeout_s=5)
            assert resp.status == 200
            assert f"host: api.example.com:{server.port}".encode() in server.requests[-1]
            return server.connections

    assert run(go()) == 1  # only the allow-listed call connected


@pytest.mark.parametrize(
    "url,headers",
    [
        ("http://127.1:9/v1", {}),
        ("http://0x7f000001:9/v1", {}),
        ("ftp://example.com/", {}),
        ("http://u:p@example.com/", {}),
        ("http://example.com/", {"x-a": "1\r\nx-injected: 1"}),
    ],
)
def test_invalid_urls_and_header_injection_are_refused(url, headers):
    async def go():
        with pytest.raises(InvalidURL):
            await Http1Client(OPEN).fetch(url, b"", headers, timeout_s=5)

    run(go())


def test_connect_refused_is_a_connect_error():
    async def go():
        async with Server(answer(OK)) as server:
            port = server.port
        with pytest.raises(ConnectError):
            await Http1Client(OPEN).fetch(f"http://127.0.0.1:{port}/", b"", {}, timeout_s=5)

    run(go())


def _certificate(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upstream.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("upstream.test")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    return server, client


def test_tls_with_sni_and_verification(tmp_path):
    server_ctx, client_ctx = _certificate(tmp_path)
    seen_sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen_sni.append(name)  # type: ignore[assignment]

    async def go():
        async with Server(answer(CHUNKED), tls=server_ctx) as server:
            loop = asyncio.get_running_loop()

            async def resolve(host, port, **kw):
                assert host == "upstream.test"
                return [(2, 1, 6, "", ("127.0.0.1", port))]

            loop.getaddrinfo = resolve  # type: ignore[method-assign]
            client = Http1Client(OPEN, ssl_context=client_ctx)
            url = server.url("upstream.test", "https")
            for _ in range(2):
                assert (await client.fetch(url, b"", {}, timeout_s=5)).body == b"dat" + b"x" * 16
            # The default context (system CAs) does not trust the self-signed certificate.
            with pytest.raises(ConnectError):
                await Http1Client(OPEN).fetch(url, b"", {}, timeout_s=5)
            # Nor does a name the certificate does not carry (connect by IP: no SAN matches).
            with pytest.raises(ConnectError):
                await client.fetch(server.url("127.0.0.1", "https"), b"", {}, timeout_s=5)
            return server.connections

    assert run(go()) == 1  # the failed handshakes never reach the handler
    assert seen_sni[0] == "upstream.test"


def test_ipv6_literal_host_header():
    async def go():
        async with Server(answer(OK)) as server:
            server.server.close()
        v6 = await asyncio.start_server(lambda r, w: answer(OK, close=True)(r, w, server), "::1", 0)
        port = v6.sockets[0].getsockname()[1]
        resp = await Http1Client(OPEN).fetch(f"http://[::1]:{port}/x", b"", {}, timeout_s=5)
        v6.close()
        return resp.status, server.requests[-1]

    status, request = run(go())
    assert status == 200 and b"host: [::1]:" in request
