"""The egress policy: where outbound requests (providers, webhooks, Slack) may go.

One rule for every outbound connection, checked on the address actually connected to:

* a host is parsed the way a resolver would read it (`127.1`, `0x7f000001`, `2130706433`,
  `017700000001`, `[::ffff:127.0.0.1]`, `[64:ff9b::a00:1]` ...), so no notation smuggles a
  private address past a string check;
* names are resolved, and every resolved address must be public: loopback, private, link-local,
  multicast, reserved, unspecified, shared (100.64/10) and the IPv4 hidden inside mapped,
  compatible, NAT64, 6to4 and Teredo IPv6 addresses are refused;
* `ALEPHANT_EGRESS_ALLOW=host:port,...` lets named self-hosted upstreams through (by the host
  as written or by the resolved IP, on that port only);
* `ALEPHANT_ALLOW_PRIVATE_UPSTREAMS=1` is the legacy development switch: it allows every address
  (the dev simulator and the tests listen on 127.0.0.1). Development only: never set it on an
  instance others can sign in to.

Django-free: the hot path (`core.http1`; `core.egress_aiohttp` for an aiohttp client) and the
cold path (httpx, `core.egress_http`) share it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# Special-purpose blocks that Python 3.11's `is_global` still calls global (later Pythons and the
# IANA registries do not): refuse them by name so the answer does not depend on the interpreter.
SPECIAL_PURPOSE = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "2001:db8::/32",
        "3fff::/20",
        "5f00::/16",
    )
)
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
DEFAULT_PORTS = {"http": 80, "https": 443}


class EgressRefused(Exception):
    """The destination is not allowed. The message is safe to show (it names no address)."""


def _parse_ipv4_part(part: str) -> int | None:
    # inet_aton rules: 0x.. is hex, a leading 0 is octal, otherwise decimal.
    try:
        if part[:2].lower() == "0x":
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part[1:], 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def _looks_numeric(label: str) -> bool:
    lowered = label.lower()
    if lowered.startswith("0x"):
        return all(c in "0123456789abcdef" for c in lowered[2:])
    return label.isdigit()


def parse_host(host: str) -> IPAddress | str:
    """Return the IP address a host denotes in any notation, or the normalised DNS name.

    Follows the WHATWG URL rule: a host whose last label is numeric is an IPv4 address or invalid
    (`1.2.3.4.5` and `1.2.3.999` raise EgressRefused rather than being sent to a resolver).
    """
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # an IPv6 zone id names an interface, not a host
    if not host:
        raise EgressRefused("The URL has no host.")
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise EgressRefused("The host is not a valid address.") from exc
    name = host.rstrip(".")
    labels = name.split(".")
    if not labels[-1] or not _looks_numeric(labels[-1]):
        try:
            return name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise EgressRefused("The host is not a valid name.") from exc
    parts = [_parse_ipv4_part(label) for label in labels]
    if len(parts) > 4 or any(p is None for p in parts):
        raise EgressRefused("The host is not a valid address.")
    numbers = [p for p in parts if p is not None]
    *head, last = numbers
    if any(p > 255 for p in head) or last >= 256 ** (5 - len(numbers)):
        raise EgressRefused("The host is not a valid address.")
    value = last
    for index, part in enumerate(head):
        value += part << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 a v6 address forwards to or stands for (mapped, compat, NAT64, 6to4, Teredo)."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    value = int(ip)
    if value >> 32 == 0 and value > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(value)
    return None


def address_is_public(ip: IPAddress) -> bool:
    """True only for a globally routable unicast address (and whatever it embeds)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in NAT64_LOCAL_USE or ip.is_site_local:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not address_is_public(embedded):
            return False
    if any(
        ip in net for net in (SHARED_ADDRESS_SPACE, *SPECIAL_PURPOSE) if net.version == ip.version
    ):
        return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def parse_allow_list(value: str | None) -> frozenset[tuple[str, int]]:
    """`host:port,[v6]:port,...` -> {(normalised host, port)}; raises ValueError on a bad entry."""
    entries: set[tuple[str, int]] = set()
    for raw in (value or "").split(","):
        raw = raw.strip()
        if not raw:
            continue
        host, sep, port = raw.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise ValueError(f"ALEPHANT_EGRESS_ALLOW entry {raw!r} must be host:port")
        try:
            entries.add((str(parse_host(host)), int(port)))
        except EgressRefused as exc:
            raise ValueError(f"ALEPHANT_EGRESS_ALLOW entry {raw!r} has a bad host") from exc
    return frozenset(entries)


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Destination:
    """A checked target: connect to `addresses` (already vetted), send `host` as Host/SNI."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class EgressPolicy:
    allow_private: bool = False
    allow: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EgressPolicy:
        environ = os.environ if environ is None else environ
        flag = environ.get("ALEPHANT_ALLOW_PRIVATE_UPSTREAMS", "").strip().lower()
        return cls(
            allow_private=flag in {"1", "true", "yes", "on"},
            allow=parse_allow_list(environ.get("ALEPHANT_EGRESS_ALLOW")),
        )

    @classmethod
    def from_settings(cls, settings: object) -> EgressPolicy:
        """From a Django settings object (duck-typed: this module imports no Django)."""
        allow = getattr(settings, "ALEPHANT_EGRESS_ALLOW", None)
        if allow is None:
            allow = os.environ.get("ALEPHANT_EGRESS_ALLOW")
        if not isinstance(allow, str):
            allow = ",".join(allow or ())
        return cls(
            allow_private=bool(getattr(settings, "ALEPHANT_ALLOW_PRIVATE_UPSTREAMS", False)),
            allow=parse_allow_list(allow),
        )

    def name_allowed(self, host: str, port: int) -> bool:
        return self.allow_private or (host, port) in self.allow

    def address_allowed(self, address: str | IPAddress, port: int) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if self.allow_private or (str(ip), port) in self.allow:
            return True
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            if (str(ip.ipv4_mapped), port) in self.allow:
                return True
        return address_is_public(ip)

    def check_addresses(self, host: str, port: int, addresses: Iterable[str]) -> tuple[str, ...]:
        """Vet resolved addresses for `host`; refuse the name if any one is not allowed.

        All, not any: a name that answers both a public and a private address is a rebinding
        attempt, and which one a client connects to is not ours to choose.
        """
        found = tuple(dict.fromkeys(addresses))
        if not found:
            raise EgressRefused("The host name does not resolve.")
        if self.name_allowed(host, port):
            return found
        if not all(self.address_allowed(a.split("%", 1)[0], port) for a in found):
            raise EgressRefused("The host is not an allowed destination.")
        return found

    def check_url(
        self, url: str, *, resolver: Resolver | None = None, must_resolve: bool = True
    ) -> Destination:
        """Parse, normalise, resolve and vet a URL's destination. Raises EgressRefused.

        `resolver(host, port) -> [address, ...]`; None means `system_resolver`, looked up at call
        time so a test can swap it for one that answers private addresses. `must_resolve=False`
        is for save-time validation: a name that does not resolve yet passes (with no addresses);
        every connection checks again.
        """
        resolver = resolver or system_resolver
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EgressRefused("Not a valid URL.") from exc
        if parts.scheme not in DEFAULT_PORTS:
            raise EgressRefused("Scheme must be http or https.")
        if parts.username is not None or parts.password is not None:
            raise EgressRefused("Credentials in the URL are not allowed.")
        port = port or DEFAULT_PORTS[parts.scheme]
        target = parse_host(parts.hostname or "")
        if isinstance(target, str):
            if target == "localhost" or target.endswith(".localhost"):
                if not self.name_allowed(target, port):
                    raise EgressRefused("The host is not an allowed destination.")
            try:
                addresses = resolver(target, port)
            except OSError as exc:
                if not must_resolve:
                    return Destination(parts.scheme, target, port, ())
                raise EgressRefused("The host name does not resolve.") from exc
            return Destination(
                parts.scheme, target, port, self.check_addresses(target, port, addresses)
            )
        if not self.address_allowed(target, port):
            raise EgressRefused("The host is not an allowed destination.")
        return Destination(parts.scheme, str(target), port, (str(target),))
