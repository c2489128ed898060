"""The week-over-week trend (and its cause) outside the page: in `GET /api/v1/efficiency` (list
and detail) and in the weekly digest mail. Ledger rows from factories; dollars checked against
`genai_prices` directly."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client

from efficiency.models import EfficiencyGrade, EfficiencyReport
from efficiency.services import efficiency_compute, efficiency_digest_send
from tests.efficiency.conftest import T0
from tests.efficiency.test_finance import call, price
from workspaces.services.tokens import api_token_create
from workspaces.services.workspaces import agent_create
from workspaces.tenancy import workspace_scope

CAUSES = [
    "openai/gpt-4o went from 100% to 0% of spend",
    "openai/gpt-4o-mini went from 0% to 100% of spend",
]


@pytest.fixture
def switched(scoped):
    """An agent on the frontier model for one-liners last week, on the cheap sibling this week;
    a second agent that was tidy both weeks."""
    ws, m = scoped.workspace, scoped.member
    asker = agent_create(workspace=ws, slug="asker", name="Asker", owner=m)
    steady = agent_create(workspace=ws, slug="steady", name="Steady", owner=scoped.admin)
    last = T0 - timedelta(days=7)
    for i in range(10):
        call(ws, m, asker, last + timedelta(minutes=2 * i), model="gpt-4o", inp=300, out=200)
        call(ws, m, asker, T0 + timedelta(minutes=2 * i), inp=300, out=200)
    for start in (last, T0):
        for i in range(5):
            call(ws, scoped.admin, steady, start + timedelta(minutes=3 * i), inp=900 + i)
    saving = 10 * (price("gpt-4o", 300, 200) - price("gpt-4o-mini", 300, 200))
    return scoped, asker, steady, saving


def _token(member):
    with workspace_scope(member.workspace_id):
        return api_token_create(member=member, name=member.role)[1]


def _get(token, path):
    response = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    return response.json()


def test_api_list_and_detail_carry_the_trend_and_its_cause(switched):
    cast, asker, _steady, saving = switched
    # Only this week is computed: the list computes the week before once (like the page).
    now = efficiency_compute(workspace=cast.workspace, at=T0)
    assert EfficiencyReport.objects.filter(workspace=cast.workspace).count() == 1
    rows = _get(_token(cast.finance), "/api/v1/efficiency?entity_kind=agent")["results"]
    assert EfficiencyReport.objects.filter(workspace=cast.workspace).count() == 2
    by_label = {r["label"]: r for r in rows}
    trend = by_label["Asker"]["trend"]
    assert (trend["previous_grade"], trend["direction"]) == ("D", "better")
    assert Decimal(trend["waste_change_usd"]) == -saving
    assert trend["causes"] == CAUSES
    assert trend["text"].startswith("last period D; ") and CAUSES[0] in trend["text"]
    assert by_label["Steady"]["trend"]["direction"] == "same"
    assert by_label["Steady"]["trend"]["causes"] == []

    # The detail, and a member reading their own agent, see the same trend.
    grade = EfficiencyGrade.objects.get(report=now, entity_kind="agent", agent=asker)
    detail = _get(_token(cast.member), f"/api/v1/efficiency/{grade.pk}")
    assert detail["trend"] == trend and detail["signals"] == []
    mine = _get(_token(cast.member), "/api/v1/efficiency?entity_kind=agent")["results"]
    assert [(r["label"], r["trend"]["direction"]) for r in mine] == [("Asker", "better")]


def test_api_trend_is_null_for_an_entity_new_this_week(scoped):
    ws, m = scoped.workspace, scoped.member
    fresh = agent_create(workspace=ws, slug="fresh", name="Fresh", owner=m)
    for i in range(3):
        call(ws, m, fresh, T0 + timedelta(minutes=i))
    efficiency_compute(workspace=ws, at=T0)
    rows = _get(_token(scoped.finance), "/api/v1/efficiency?entity_kind=agent")["results"]
    assert [(r["label"], r["trend"]) for r in rows] == [("Fresh", None)]


def test_digest_mail_shows_the_trend_and_what_improved(switched, mailoutbox):
    cast, *_ = switched
    assert efficiency_digest_send(workspace=cast.workspace, at=T0 + timedelta(days=7)) == 1
    (mail,) = mailoutbox
    text = mail.body
    improved = text.split("Better than the week before:")[1].split("All grades")[0]
    assert "Agent Asker: last period D;" in improved and CAUSES[0] in improved
    assert "Steady" not in improved  # the same both weeks: not an improvement
    html = mail.alternatives[0][0]
    assert 'data-trend="better"' in html and CAUSES[1] in html
    assert "Against the week before" in html
