"""Every page, as the owner, fed odd query strings and odd path bytes: never a 500.

An attacker (or a crawler) sends whatever fits in a URL. The pages come from the URL resolver, so a
new page is crawled without editing this test; ids are real ones from a seeded workspace.
"""

from __future__ import annotations

import re
from decimal import Decimal
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from billing.services.budgets import budget_create
from tests.factories import UsageRecordFactory
from workspaces.tenancy import workspace_scope

# Query strings a browser, a crawler or an attacker sends (raw: already percent-encoded).
ODD_QUERIES = [
    "",
    "period=day&date=9999-12-31",
    "period=week&date=9999-12-31",
    "period=month&date=9999-12-31",
    "period=day&date=0001-01-01",
    "period=month&date=0001-01-01",
    "period=week&date=0001-01-03",
    "date=0000-00-00",
    "period=day&date=2026-02-30",
    "period=custom&start=0001-01-01&end=0001-12-31",
    "period=custom&start=9999-01-01&end=9999-12-31",
    "period=custom&start=2026-12-31&end=2026-01-01",
    "period=custom&start=abc&end=%00",
    "page=-1",
    "page=abc",
    "page=0",
    "page=99999999999999999999999",
    "page=1e9",
    "sort=-__class__",
    "sort=%00",
    "export=%00",
    "export=provider-keys&export=gateway-keys",
    "date=%00&period=%00&page=%00",
    "period=" + "x" * 5000,
    "date=" + "9" * 5000,
    "period=%C3%BC%F0%9F%90%98&date=%E2%80%AE2026-01-01",
    "period=%ff%fe&date=%c0%af",
    "period=day&period=week&date=2026-01-01&date=nope",
    "period[]=day&date[]=2026-01-01",
    "%00=%00",
    "&&&==&",
]

# Stand-ins for <str:...> and <path:...> segments.
ODD_SEGMENTS = [
    "%00",
    "..%2F..%2Fetc%2Fpasswd",
    "%ff%fe",
    "%C3%BC%F0%9F%90%98",
    "x" * 3000,
    "a%20b",
    "%25",
    "-1",
]
ODD_INTS = ["0", "999999999999999999999999", "2147483648", "9223372036854775808"]

SKIP_PREFIXES = ("api/", "accounts/", "healthz", "readyz")
PARAM = re.compile(r"<(?:(?P<conv>\w+):)?(?P<name>\w+)>")


def _routes(patterns=None, prefix: str = ""):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            route = prefix + str(pattern.pattern)
            if not route.startswith(SKIP_PREFIXES):
                yield route


def _seed(world, cast) -> dict[str, str]:
    """Real values for each URL parameter name, from the seeded workspace A."""
    ws = cast.workspace
    with workspace_scope(ws.pk):
        budget = budget_create(
            workspace=ws,
            actor=cast.owner,
            scope_type="workspace",
            metric="usd",
            amount_usd=Decimal(50),
            period="month",
        )
        for day in range(3):
            UsageRecordFactory(
                workspace=ws,
                member=cast.member,
                agent=world.agent,
                department=world.department,
                gateway_key=world.gateway_key,
                properties={"team": "core"},
                session_id=f"s-{day}",
            )
    return {
        "pk": str(world.gateway_key.pk),
        "member_id": str(cast.member.pk),
        "invitation_id": str(world.invitation.pk),
        "department_id": str(world.department.pk),
        "agent_id": str(world.agent.pk),
        "segment": "members",
        "kind": "member",
        "key": "gpt-4o-mini",
        "token": "not-a-real-token",
        "budget": str(budget.pk),
    }


def _fill(route: str, values: dict[str, str], odd: str | None = None) -> str:
    def one(match: re.Match) -> str:
        if odd is not None:
            numeric = match.group("conv") == "int"
            return odd if numeric == odd.lstrip("-").isdigit() else real(match)
        return real(match)

    def real(match: re.Match) -> str:
        # A parameter a new page introduced: any id still exercises its 404 path.
        return values.get(match.group("name"), "1")

    return "/" + PARAM.sub(one, route)


def _get(client: Client, url: str, failures: list[str]) -> None:
    try:
        status = client.get(url).status_code
    except Exception as exc:  # the test client re-raises the view's exception
        failures.append(f"{url[:160]} raised {type(exc).__name__}: {str(exc)[:120]}")
        return
    if status >= 500:
        failures.append(f"{url[:160]} answered {status}")


@pytest.mark.django_db
def test_every_page_answers_odd_query_strings_without_a_500(world, cast):
    values = _seed(world, cast)
    client = Client()
    client.force_login(cast.owner.user)
    failures: list[str] = []
    routes = list(_routes())
    assert len(routes) > 30  # the resolver walk found the pages
    for route in routes:
        base = _fill(route, values)
        for query in ODD_QUERIES:
            _get(client, f"{base}?{query}" if query else base, failures)
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_odd_path_bytes_and_ids_answer_404_not_500(world, cast):
    values = _seed(world, cast)
    client = Client()
    client.force_login(cast.owner.user)
    failures: list[str] = []
    for route in _routes():
        if not PARAM.search(route):
            _get(client, "/" + route + "%00", failures)
            continue
        for odd in ODD_SEGMENTS + ODD_INTS:
            _get(client, _fill(route, values, odd), failures)
    for raw in ["/%00/", "/spend/%ff/", "/" + quote("üñí/çødé") + "/", "/manage/..%2f..%2f/"]:
        _get(client, raw, failures)
    assert not failures, "\n".join(failures)
