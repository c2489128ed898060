"""The ranking page, the drill-down card, `/api/v1/efficiency` and the weekly digest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from efficiency import tasks
from efficiency.models import EfficiencyGrade, EfficiencyReport
from efficiency.services import efficiency_compute, period_bounds
from tests.efficiency.conftest import T0, Ledger
from workspaces.services.tokens import api_token_create
from workspaces.tenancy import workspace_scope

ROLES = ("owner", "admin", "finance", "member", "outsider")


def _traffic(cast, bot, helper, at):
    ledger = Ledger(cast.workspace)
    ledger.varied(member=cast.admin, agent=helper, count=20, start=at)
    loop = [
        ledger.call(
            member=cast.member,
            agent=bot,
            prompt="retry the deploy",
            session_id="run-9",
            at=at + timedelta(minutes=90, seconds=3 * i),
        )
        for i in range(25)
    ]
    return loop


@pytest.fixture
def graded(scoped, bot, helper):
    loop = _traffic(scoped, bot, helper, T0)
    efficiency_compute(workspace=scoped.workspace, at=T0)
    return scoped, bot, helper, loop


@pytest.fixture
def tokens(graded):
    cast = graded[0]
    out = {}
    for role in ROLES:
        member = cast.by_role(role)
        with workspace_scope(member.workspace_id):
            _, out[role] = api_token_create(member=member, name=f"{role} token")
    return out


def _get(tokens, role, path):
    return Client().get(path, HTTP_AUTHORIZATION=f"Bearer {tokens[role]}")


def _ids(response):
    return {(g["entity_kind"], g["entity_id"]) for g in response.json()["results"]}


def test_api_role_matrix(graded, tokens):
    cast, bot, helper, _ = graded
    everything = {
        ("member", cast.member.pk),
        ("member", cast.admin.pk),
        ("agent", bot.pk),
        ("agent", helper.pk),
        ("department", cast.member.department_id),
    }
    for role in ("owner", "admin", "finance"):
        response = _get(tokens, role, "/api/v1/efficiency")
        assert response.status_code == 200, role
        assert _ids(response) == everything
    own = _get(tokens, "member", "/api/v1/efficiency")
    assert own.status_code == 200 and _ids(own) == {("member", cast.member.pk), ("agent", bot.pk)}
    outsider = _get(tokens, "outsider", "/api/v1/efficiency")
    assert outsider.status_code == 200 and outsider.json()["results"] == []
    assert Client().get("/api/v1/efficiency").status_code in (401, 403)


def test_api_detail_has_the_evidence_and_foreign_ids_are_404(graded, tokens):
    cast, bot, helper, loop = graded
    with workspace_scope(cast.workspace.pk):
        bot_grade = EfficiencyGrade.objects.get(entity_kind="agent", agent_id=bot.pk)
        helper_grade = EfficiencyGrade.objects.get(entity_kind="agent", agent_id=helper.pk)
        before = (EfficiencyGrade.objects.count(), EfficiencyReport.objects.count())
    body = _get(tokens, "finance", f"/api/v1/efficiency/{bot_grade.pk}").json()
    assert (body["grade"], body["verdict"], body["capped_by"]) == ("D", "wasteful", "thrashing")
    thrash = next(s for s in body["signals"] if s["kind"] == "thrashing")
    assert thrash["veto"] and thrash["evidence"]["request_ids"] == [r.request_id for r in loop]
    assert _get(tokens, "member", f"/api/v1/efficiency/{bot_grade.pk}").status_code == 200
    # Another member's agent and another workspace's grade: the same 404.
    for role, pk in (
        ("member", helper_grade.pk),
        ("outsider", bot_grade.pk),
        ("outsider", 999_999_999),
    ):
        response = _get(tokens, role, f"/api/v1/efficiency/{pk}")
        assert response.status_code == 404, (role, pk)
        assert response.json()["error"]["type"] == "not_found"
    with workspace_scope(cast.workspace.pk):
        assert (EfficiencyGrade.objects.count(), EfficiencyReport.objects.count()) == before


def test_api_period_filter_and_grade_filter(graded, tokens):
    _cast, bot, _, _ = graded
    response = _get(tokens, "owner", "/api/v1/efficiency?grade=D&entity_kind=agent")
    assert _ids(response) == {("agent", bot.pk)}
    assert _get(tokens, "owner", "/api/v1/efficiency?period=month").json()["results"] == []


def _week_start(cast, at):
    # Anchored to the start of a week, so the traffic never straddles two periods.
    return period_bounds(workspace=cast.workspace, period="week", at=at)[0]


def _login(member):
    client = Client()
    client.force_login(member.user)
    return client


def test_ranking_page_role_matrix_and_content(graded):
    cast, bot, _helper, _ = graded
    for role in ("owner", "admin", "finance"):
        page = _login(cast.by_role(role)).get("/efficiency/")
        assert page.status_code == 200, role
        html = page.content.decode()
        assert f'data-entity="agent-{bot.pk}"' in html and "Wasteful" in html
        assert "Helper" in html and "Justified" in html
    assert _login(cast.member).get("/efficiency/").status_code == 403


def test_detail_page_shows_the_loop_evidence_to_the_agents_owner(graded):
    cast, bot, helper, loop = graded
    member = _login(cast.member)
    page = member.get(f"/efficiency/agent/{bot.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-signal="thrashing"' in html and loop[-1].request_id in html
    assert member.get(f"/efficiency/agent/{helper.pk}/").status_code == 403
    assert _login(cast.outsider).get(f"/efficiency/agent/{bot.pk}/").status_code == 404


def test_drilldown_card_on_the_spend_page(graded):
    cast, bot, helper, _ = graded
    html = _login(cast.owner).get(f"/spend/agents/{bot.pk}/").content.decode()
    assert 'data-efficiency-grade="D"' in html and 'data-efficiency-verdict="wasteful"' in html
    html = _login(cast.owner).get(f"/spend/agents/{helper.pk}/").content.decode()
    assert 'data-efficiency-verdict="justified"' in html


def test_first_visit_computes_and_recompute_replaces(scoped, bot, helper):
    _traffic(scoped, bot, helper, _week_start(scoped, timezone.now()))
    client = _login(scoped.finance)
    assert "Looper" in client.get("/efficiency/").content.decode()
    assert client.post("/efficiency/recompute/").status_code == 302
    with workspace_scope(scoped.workspace.pk):
        # This week and last (the page's trend compares them); the recompute replaced in place.
        assert EfficiencyReport.objects.filter(period="week").count() == 2


def test_weekly_digest_mails_finance_with_each_workspaces_grades(scoped, bot, helper, mailoutbox):
    _traffic(scoped, bot, helper, _week_start(scoped, timezone.now() - timedelta(days=7)))
    assert tasks.efficiency_weekly_digest() == 1  # workspace B spent nothing: no mail
    (mail,) = mailoutbox
    assert mail.to == ["finance@a.example"]
    assert "Looper" in mail.body and "wasteful" in mail.body and "/efficiency/agent/" in mail.body
    assert tasks.efficiency_recompute_all() == 2
