"""The egress policy on httpx (cold path: provider "test connection", webhook and Slack delivery).

Resolve once, vet, then connect to that very address: the request URL is rewritten to the vetted IP
while the Host header keeps the name and TLS uses it for SNI and certificate checks. A second
lookup (DNS rebinding between check and connect) therefore cannot change where the bytes go.
Redirects are never followed; proxies from the environment are ignored.
"""

from __future__ import annotations

import httpx

from core.egress import EgressPolicy, EgressRefused, Resolver
from core.logmask import quiet_http_client_loggers

# Every caller of the egress client may carry a credential in its URL (a Slack webhook).
quiet_http_client_loggers()


class EgressTransport(httpx.HTTPTransport):
    def __init__(self, policy: EgressPolicy, *, resolver: Resolver | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.policy = policy
        self.resolver = resolver

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        destination = self.policy.check_url(str(request.url), resolver=self.resolver)
        pinned = request.url.copy_with(host=destination.addresses[0])
        request.url = pinned
        # httpx already set Host from the original URL; keep it and name TLS after it too.
        request.headers["Host"] = request.headers.get("Host") or destination.host
        request.extensions = {**request.extensions, "sni_hostname": destination.host}
        return super().handle_request(request)


def egress_client(
    policy: EgressPolicy, *, timeout: httpx.Timeout | float, resolver: Resolver | None = None
) -> httpx.Client:
    return httpx.Client(
        transport=EgressTransport(policy, resolver=resolver),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )


__all__ = ["EgressRefused", "EgressTransport", "egress_client"]
