"""API token authentication for the REST API (filled in with the APIToken model)."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication


class APITokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        return None
