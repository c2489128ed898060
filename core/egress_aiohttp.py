"""The egress policy on the hot path's aiohttp client.

Two hooks, because aiohttp skips the resolver for literal IP hosts:

* `EgressResolver` wraps the default resolver and refuses a name whose addresses are not allowed;
* `EgressGuard.socket_factory` runs on the exact address about to be connected to (literal or
  resolved), so nothing reaches `connect()` unvetted, including after a DNS cache hit.

Use::

    guard = EgressGuard(EgressPolicy.from_env())
    connector = aiohttp.TCPConnector(..., resolver=guard.resolver(),
                                     socket_factory=guard.socket_factory)
    session.request(..., allow_redirects=False)
"""

from __future__ import annotations

import socket
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from core.egress import EgressPolicy, EgressRefused, parse_host

# Allow-listed *names* may resolve to private addresses; the socket factory must then accept
# those (ip, port) pairs too. Bounded: only allow-listed names ever add to it.
_MAX_APPROVED = 4096


class EgressRefusedError(OSError):
    """Raised inside aiohttp's connect path: it becomes a ClientConnectorError, never a crash."""


class EgressGuard:
    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self._approved: set[tuple[str, int]] = set()

    def resolver(self, inner: AbstractResolver | None = None) -> EgressResolver:
        return EgressResolver(self, inner or DefaultResolver())

    def approve(self, host: str, port: int, addresses: list[str]) -> None:
        try:
            self.policy.check_addresses(host, port, addresses)
        except EgressRefused as exc:
            raise EgressRefusedError(str(exc)) from exc
        if (host, port) in self.policy.allow and len(self._approved) < _MAX_APPROVED:
            self._approved.update((a, port) for a in addresses)

    def socket_factory(self, addr_info: Any) -> socket.socket:
        family, type_, proto, _canonname, sockaddr = addr_info
        address, port = str(sockaddr[0]).split("%", 1)[0], int(sockaddr[1])
        if (address, port) not in self._approved and not self.policy.address_allowed(address, port):
            raise EgressRefusedError("The host is not an allowed destination.")
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock


class EgressResolver(AbstractResolver):
    """Resolve with the wrapped resolver, then vet every answer (before aiohttp caches it)."""

    def __init__(self, guard: EgressGuard, inner: AbstractResolver) -> None:
        self._guard = guard
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            name = str(parse_host(host))
        except EgressRefused as exc:
            raise EgressRefusedError(str(exc)) from exc
        results = await self._inner.resolve(host, port, family)
        self._guard.approve(name, port, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        await self._inner.close()
