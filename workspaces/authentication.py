"""REST API authentication: `Authorization: Bearer alpt_...` (or `Token alpt_...`).

The token decides the workspace. `workspaces.api_base.WorkspaceViewSet` looks the token up once
(before opening the workspace scope) and leaves the match on the request for this class.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from workspaces.services.tokens import api_token_authenticate, api_token_lookup

SCHEMES = ("bearer", "token")
_UNSET = object()


def token_from_header(header: str) -> str | None:
    """The raw token of a Bearer/Token header; None for other schemes or no header."""
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.lower() not in SCHEMES:
        return None
    return value.strip()


class APITokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        try:
            header = get_authorization_header(request).decode("latin-1")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API token.") from None
        raw = token_from_header(header)
        if raw is None:
            return None
        match = getattr(request._request, "alephant_token_match", _UNSET)
        if match is _UNSET:
            match = api_token_lookup(raw)
        if match is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        token = api_token_authenticate(match)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        return (token.member.user, token)

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'
