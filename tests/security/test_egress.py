"""SSRF: outbound requests go only where the egress policy allows, checked on the address used."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver

import core.egress
from billing.services.channels import DeliveryError, _post
from core.egress import EgressPolicy, EgressRefused, address_is_public, parse_allow_list, parse_host
from core.egress_aiohttp import EgressGuard
from core.egress_http import egress_client
from gateway.services import provider_check
from tests.security.conftest import answer, closed_port

URL = "/api/v1/provider-keys/"
HOSTILE = [
    "http://127.0.0.1",
    "http://127.1",
    "http://127.0.1",
    "http://0x7f000001",
    "http://0x7f.0.0.1",
    "http://2130706433",
    "http://017700000001",
    "http://0177.0.0.1",
    "http://0",
    "http://0.0.0.0:8000",
    "http://localhost",
    "http://LOCALHOST.",
    "http://api.localhost",
    "http://[::1]",
    "http://[::]",
    "http://[0:0:0:0:0:0:0:1]",
    "http://[::ffff:127.0.0.1]",
    "http://[::ffff:7f00:1]",
    "http://[::ffff:a9fe:a9fe]",
    "http://[::127.0.0.1]",
    "http://[64:ff9b::7f00:1]",
    "http://[64:ff9b::a9fe:a9fe]",
    "http://[64:ff9b:1::1]",
    "http://[2002:7f00:1::]",
    "http://[fe80::1]",
    "http://[fc00::1]",
    "http://[fec0::1]",
    "http://[ff02::1]",
    "http://10.0.0.5",
    "http://172.16.0.1",
    "http://192.168.1.10",
    "http://169.254.169.254/latest",
    "http://100.64.0.1",
    "http://100.127.255.254",
    "http://224.0.0.1",
    "http://239.255.255.250",
    "http://240.0.0.1",
    "http://255.255.255.255",
    "http://198.18.0.1",
    "http://192.0.0.8",
    "http://1.2.3.4.5",
    "http://1.2.3.999",
]
PUBLIC = ["https://api.openai.com", "http://8.8.8.8", "http://[2606:4700:4700::1111]"]


@pytest.fixture
def strict(settings):
    """Egress as on a real instance: the legacy dev switch off, nothing allow-listed."""
    settings.ALEPHANT_ALLOW_PRIVATE_UPSTREAMS = False
    settings.ALEPHANT_EGRESS_ALLOW = ""
    return settings


@pytest.fixture
def fake_dns(monkeypatch):
    """A test resolver: names in `records` answer what they are told to; others do not exist."""
    records: dict[str, list[str]] = {}
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in records:
            raise socket.gaierror("no such name")
        answers = records[host]
        return [answers.pop(0)] if len(answers) > 1 else list(answers)

    monkeypatch.setattr(core.egress, "system_resolver", resolve)
    records_calls = records, calls
    return records_calls


# --- the policy itself ---------------------------------------------------------------------


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_url_is_refused_in_every_notation(url):
    with pytest.raises(EgressRefused):
        EgressPolicy().check_url(url, resolver=lambda host, port: ["127.0.0.1"])


@pytest.mark.parametrize("url", PUBLIC)
def test_public_destinations_pass(url):
    destination = EgressPolicy().check_url(url, resolver=lambda host, port: ["104.18.6.192"])
    assert destination.addresses


def test_notations_normalise_to_the_address_a_resolver_would_use():
    for host in ["127.1", "0x7f000001", "2130706433", "017700000001", "0x7f.0.0.1"]:
        assert str(parse_host(host)) == "127.0.0.1"
    assert str(parse_host("0")) == "0.0.0.0"
    assert not address_is_public(parse_host("[::ffff:127.0.0.1]"))


def test_a_name_with_one_private_answer_among_public_ones_is_refused():
    with pytest.raises(EgressRefused):
        EgressPolicy().check_url(
            "https://mixed.example", resolver=lambda h, p: ["93.184.216.34", "10.0.0.1"]
        )


def test_allow_list_is_per_host_and_port():
    policy = EgressPolicy(allow=parse_allow_list("10.0.0.5:8000, llm.internal:11434, [fd00::7]:80"))
    assert policy.check_url("http://10.0.0.5:8000/v1").addresses == ("10.0.0.5",)
    assert policy.check_url("http://[fd00::7]/", resolver=None).addresses == ("fd00::7",)
    internal = policy.check_url("http://llm.internal:11434", resolver=lambda h, p: ["10.1.1.1"])
    assert internal.addresses == ("10.1.1.1",)
    for url in ["http://10.0.0.5:8001", "http://10.0.0.6:8000", "http://llm.internal:80"]:
        with pytest.raises(EgressRefused):
            policy.check_url(url, resolver=lambda h, p: ["10.1.1.1"])
    with pytest.raises(ValueError):
        parse_allow_list("10.0.0.5")


def test_legacy_switch_allows_private_addresses_for_development():
    assert EgressPolicy(allow_private=True).check_url("http://127.0.0.1:9").addresses
    env = {"ALEPHANT_ALLOW_PRIVATE_UPSTREAMS": "0", "ALEPHANT_EGRESS_ALLOW": "10.0.0.5:80"}
    assert EgressPolicy.from_env(env) == EgressPolicy(allow=frozenset({("10.0.0.5", 80)}))


# --- through the API, as an admin ----------------------------------------------------------


@pytest.mark.parametrize("url", HOSTILE)
def test_admin_cannot_save_a_hostile_base_url(api, strict, url):
    body = {"provider": "ollama", "name": "x", "secret": "s", "base_url": url}
    response = api.call("admin", "post", URL, body)
    assert response.status_code == 400, (url, response.content)
    assert "base_url" in response.json()["error"]["fields"]


def test_a_name_resolving_to_a_private_address_is_refused_on_save(api, strict, fake_dns):
    records, _ = fake_dns
    records["metadata.attacker.example"] = ["169.254.169.254"]
    body = {
        "provider": "openai-compatible",
        "name": "x",
        "secret": "s",
        "base_url": "http://metadata.attacker.example/v1",
    }
    response = api.call("admin", "post", URL, body)
    assert response.status_code == 400
    assert "base_url" in response.json()["error"]["fields"]


def _saved_key(api, settings, base_url: str) -> int:
    settings.ALEPHANT_ALLOW_PRIVATE_UPSTREAMS = True  # saved while the name was harmless
    body = {
        "provider": "openai-compatible",
        "name": base_url,
        "secret": "sk-1",
        "base_url": base_url,
    }
    response = api.call("admin", "post", URL, body)
    assert response.status_code == 201, response.content
    settings.ALEPHANT_ALLOW_PRIVATE_UPSTREAMS = False
    return response.json()["id"]


def test_rebinding_after_save_is_refused_at_connect_time(api, strict, fake_dns, http_server):
    server = http_server(answer(200))
    records, _ = fake_dns
    records["rebind.attacker.example"] = ["127.0.0.1"]
    key = _saved_key(api, strict, f"http://rebind.attacker.example:{server.port}/v1")
    body = api.call("admin", "post", f"{URL}{key}/test/").json()
    assert body == {"ok": False, "status": None, "message": provider_check.UNREACHABLE}
    assert server.requests == []


def test_redirect_to_a_private_address_is_not_followed(api, strict, http_server):
    internal = http_server(answer(200))
    front = http_server(answer(302, Location=f"{internal.url}/v1/models"))
    strict.ALEPHANT_EGRESS_ALLOW = f"127.0.0.1:{front.port}"
    key = _saved_key(api, strict, f"{front.url}/v1")
    body = api.call("admin", "post", f"{URL}{key}/test/").json()
    assert body["ok"] is False and body["message"] == provider_check.UNREACHABLE
    assert len(front.requests) == 1 and internal.requests == []


def test_closed_filtered_and_not_http_answer_alike(api, strict, raw_tcp_server, monkeypatch):
    monkeypatch.setattr(provider_check, "TIMEOUT_S", 0.5)
    ports = [closed_port(), raw_tcp_server(None), raw_tcp_server(b"SSH-2.0-OpenSSH_9.2\r\n")]
    strict.ALEPHANT_EGRESS_ALLOW = ",".join(f"127.0.0.1:{p}" for p in ports)
    answers = []
    for port in ports:
        key = _saved_key(api, strict, f"http://127.0.0.1:{port}/v1")
        strict.ALEPHANT_EGRESS_ALLOW = ",".join(f"127.0.0.1:{p}" for p in ports)
        answers.append(api.call("admin", "post", f"{URL}{key}/test/").json())
    assert answers == [{"ok": False, "status": None, "message": provider_check.UNREACHABLE}] * 3
    for text in ["Error", "Timeout", "Refused", "HTTP", "SSH"]:
        assert all(text not in a["message"] for a in answers)


def test_an_odd_http_status_is_not_reported(api, strict, http_server):
    server = http_server(answer(404))
    strict.ALEPHANT_EGRESS_ALLOW = f"127.0.0.1:{server.port}"
    key = _saved_key(api, strict, f"{server.url}/v1")
    strict.ALEPHANT_EGRESS_ALLOW = f"127.0.0.1:{server.port}"
    body = api.call("admin", "post", f"{URL}{key}/test/").json()
    assert body == {"ok": False, "status": None, "message": provider_check.UNREACHABLE}


def test_member_and_stranger_cannot_probe(api, strict, world):
    path = f"{URL}{world.provider_key.pk}/test/"
    assert api.call("member", "post", path).status_code == 403
    assert api.call("outsider", "post", path).status_code == 404
    assert api.call(None, "post", path).status_code in (401, 403)


# --- the clients: pinned address, no redirects ---------------------------------------------


def test_httpx_connects_to_the_address_it_checked(http_server):
    server = http_server(answer(200))
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    calls = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    policy = EgressPolicy(allow=frozenset({("127.0.0.1", server.port)}))
    with egress_client(policy, timeout=2, resolver=rebinding) as client:
        response = client.get(f"http://svc.test:{server.port}/x")
    assert response.status_code == 200 and calls == ["svc.test"]
    assert server.requests[0][1]["Host"] == f"svc.test:{server.port}"


def test_httpx_client_refuses_before_connecting(http_server):
    server = http_server(answer(200))
    with egress_client(EgressPolicy(), timeout=2) as client:
        with pytest.raises(EgressRefused):
            client.get(f"{server.url}/x")
    assert server.requests == []


def test_webhook_to_a_name_resolving_private_is_a_permanent_failure(strict, fake_dns, http_server):
    server = http_server(answer(200))
    records, _ = fake_dns
    records["hooks.attacker.example"] = ["127.0.0.1"]
    with pytest.raises(DeliveryError) as caught:
        _post(f"http://hooks.attacker.example:{server.port}/h", b"{}", {})
    assert caught.value.permanent and server.requests == []


def test_webhook_redirect_is_not_followed(strict, http_server):
    internal = http_server(answer(200))
    front = http_server(answer(307, Location=f"{internal.url}/"))
    strict.ALEPHANT_EGRESS_ALLOW = f"127.0.0.1:{front.port}"
    with pytest.raises(DeliveryError):
        _post(f"{front.url}/hook", b"{}", {})
    assert internal.requests == []


class _FixedResolver(AbstractResolver):
    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self):
        pass


async def _aiohttp_get(guard: EgressGuard, url: str, inner: AbstractResolver | None = None):
    connector = aiohttp.TCPConnector(
        resolver=guard.resolver(inner), socket_factory=guard.socket_factory
    )
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(url, allow_redirects=False) as response:
            return response.status


def test_aiohttp_guard_checks_literals_names_and_allow_list(http_server):
    server = http_server(answer(302, Location="http://127.0.0.1:9/"))
    strict = EgressGuard(EgressPolicy())
    with pytest.raises(aiohttp.ClientConnectorError):
        asyncio.run(_aiohttp_get(strict, f"{server.url}/x"))
    with pytest.raises(aiohttp.ClientConnectorError):
        asyncio.run(
            _aiohttp_get(strict, f"http://evil.test:{server.port}/", _FixedResolver("127.0.0.1"))
        )
    assert server.requests == []
    allowed = EgressGuard(EgressPolicy(allow=frozenset({("svc.test", server.port)})))
    status = asyncio.run(
        _aiohttp_get(allowed, f"http://svc.test:{server.port}/", _FixedResolver("127.0.0.1"))
    )
    assert status == 302 and len(server.requests) == 1  # answered, redirect not followed


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest", "http://0x7f000001/", "http://[::1]/"]
)
def test_admin_cannot_point_an_alert_channel_at_a_private_address(api, strict, world, url):
    for kind in ("webhook", "slack"):
        body = {"kind": kind, "name": f"{kind}-x", "url": url}
        response = api.call("admin", "post", "/api/v1/alert-channels/", body)
        assert response.status_code == 400 and "url" in response.json()["error"]["fields"]
