"""Security headers Django does not set itself: Content-Security-Policy.

The pages load scripts and stylesheets only from our own origin (static/js, static/css; the API
docs use drf-spectacular's split view, whose script is a separate URL). Inline `style=` widths on
the burn bars and the pages' `<style>` blocks need 'unsafe-inline' for styles only; scripts
never run inline (no handler attributes: forms ask for confirmation through static/js/confirm.js).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.policy = getattr(settings, "ALEPHANT_CSP", DEFAULT_CSP)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
