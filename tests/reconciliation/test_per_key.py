"""Capture per provider key: the ledger records which call key served each call, an admin links
our call keys to the provider's key ids, and the day drill-down sets the provider's per-key usage
(simulator's admin API, real HTTP) against the ledger per key."""

from __future__ import annotations

import datetime as dt

import httpx
import openai
import pytest
from django.test import Client

from gateway.models import ProviderCredential
from reconciliation import selectors
from reconciliation.models import ProviderKeyLink
from reconciliation.services.pull import provider_costs_pull
from tests.reconciliation.conftest import OPENAI_CALL_KEY, add_admin_keys
from workspaces.tenancy import workspace_scope

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

MODEL = "gpt-4o-mini"
OTHER_KEY = "sk-sim-someone-elses-key"  # the same organization, a key not in Alephant


def _sim_key_id(gw, secret: str) -> str:
    return httpx.get(
        gw.stack.sim_url + "/_sim/billing/keys", params={"provider": "openai", "secret": secret}
    ).json()["key_id"]


def _link_by_page(gw, member, credential_pk: int, key_id: str):
    client = Client()
    client.force_login(member.user)
    return client.post(f"/reconciliation/key-links/{credential_pk}/", {"provider_key_id": key_id})


def test_capture_per_key_on_the_day_drill_down(gw):
    ws = gw.cast.workspace
    add_admin_keys(ws, gw.stack.sim_url)
    with workspace_scope(ws.pk):
        oai = ProviderCredential.objects.get(workspace=ws, name="oai")
    ours, others = _sim_key_id(gw, OPENAI_CALL_KEY), _sim_key_id(gw, OTHER_KEY)
    assert _link_by_page(gw, gw.cast.admin, oai.pk, ours).status_code == 302

    client = openai.OpenAI(base_url=gw.base, api_key=gw.key, max_retries=0)
    for i in range(2):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": f"per key {i}"}]
        )
    # Around Alephant: once with our call key, once with another key of the organization.
    for secret in (OPENAI_CALL_KEY, OTHER_KEY):
        httpx.post(
            gw.stack.sim_url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "around it"}]},
        ).raise_for_status()

    records = gw.ledger(provider="openai")
    assert len(records) == 2 and {r.provider_credential_id for r in records} == {oai.pk}
    today = dt.datetime.now(dt.UTC).date()
    with workspace_scope(ws.pk):
        assert provider_costs_pull(workspace=ws, provider="openai", days=2).error == ""
        rows = {
            r.key_id: r
            for r in selectors.per_key(workspace=ws, provider="openai", day=today, model=MODEL)
        }
    assert set(rows) == {ours, others}
    mine, theirs = rows[ours], rows[others]
    assert mine.credential == "oai" and theirs.credential == ""
    assert (mine.theirs.requests, mine.ours.requests) == (3, 2)
    assert mine.ours.input_tokens == sum(r.input_tokens for r in records)
    assert mine.ledger_cost == sum(r.cost_usd for r in records)
    assert 0 < mine.capture_rate < 100 and mine.difference > 0
    assert (theirs.theirs.requests, theirs.ours.requests, theirs.capture_rate) == (1, 0, 0)

    page = Client()
    page.force_login(gw.cast.finance.user)
    drill = page.get(f"/reconciliation/day/?day={today}&provider=openai&model={MODEL}")
    assert drill.status_code == 200
    body = drill.content.decode()
    assert "Capture per provider key" in body and ours in body and others in body
    assert "not one of our keys" in body


def test_unlinked_credential_shows_as_its_own_row_then_links(gw):
    ws = gw.cast.workspace
    add_admin_keys(ws, gw.stack.sim_url)
    client = openai.OpenAI(base_url=gw.base, api_key=gw.key, max_retries=0)
    client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    gw.ledger()
    today = dt.datetime.now(dt.UTC).date()
    with workspace_scope(ws.pk):
        provider_costs_pull(workspace=ws, provider="openai", days=1)
        rows = selectors.per_key(workspace=ws, provider="openai", day=today, model=MODEL)
    # Not linked yet: the provider's key row and our credential's row stand apart.
    assert sorted((r.key_id, r.credential, r.ours.requests) for r in rows) == sorted(
        [(_sim_key_id(gw, OPENAI_CALL_KEY), "", 0), ("", "oai", 1)]
    )


def test_key_links_roles_tenancy_and_uniqueness(gw):
    cast = gw.cast
    with workspace_scope(cast.workspace.pk):
        oai = ProviderCredential.objects.get(workspace=cast.workspace, name="oai")
        ant = ProviderCredential.objects.get(workspace=cast.workspace, name="ant")
    assert _link_by_page(gw, cast.finance, oai.pk, "key_x").status_code == 403
    assert _link_by_page(gw, cast.outsider, oai.pk, "key_x").status_code == 404
    with workspace_scope(cast.workspace.pk):
        assert not ProviderKeyLink.objects.exists()
    assert _link_by_page(gw, cast.owner, oai.pk, " key_x ").status_code == 302
    _link_by_page(gw, cast.owner, ant.pk, "key_x")  # taken: refused with a message
    with workspace_scope(cast.workspace.pk):
        links = list(ProviderKeyLink.objects.values_list("credential_id", "provider_key_id"))
        page_links = selectors.key_links(workspace=cast.workspace)
    assert links == [(oai.pk, "key_x")]
    assert {k["credential"].name for k in page_links} == {"oai", "ant"}  # not gemini
    _link_by_page(gw, cast.owner, oai.pk, "")  # blank unlinks
    with workspace_scope(cast.workspace.pk):
        assert not ProviderKeyLink.objects.exists()
