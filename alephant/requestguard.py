"""Refuse request URLs Postgres cannot even compare: a NUL byte in the path or query string.

A `%00` in a URL segment reaches the ORM as a text parameter and Postgres rejects the whole query
("text fields cannot contain NUL"), a 500. No page or API takes NUL anywhere in a URL, so it is a
400 before any view runs. (Form fields are covered by Django's ProhibitNullCharactersValidator.)
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest


class RejectNullBytesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in raw_query or "\x00" in raw_query:
            return HttpResponseBadRequest("NUL bytes are not allowed in URLs.")
        return self.get_response(request)
