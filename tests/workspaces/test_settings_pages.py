"""Issue 15 admin pages: /settings/ (name, time zone), the audit log page, API tokens (shown
once, revoke), gateway keys' last use and spend, invitation links and the locked address."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db.models import Max, Sum
from django.test import override_settings
from django.utils import timezone

from attribution.services.rollups import rollup_workspace
from billing.models import UsageRecord
from billing.services.budgets import budget_create
from tests.attribution.factories import usage
from tests.workspaces.helpers import token_from_mail
from workspaces import system
from workspaces.models import APIToken, AuditLog, User, Workspace
from workspaces.services.tokens import api_token_create, api_token_lookup
from workspaces.tenancy import workspace_scope

PASSWORD = "a-long-and-unusual-passphrase-77"


def _login(client, member):
    client.force_login(member.user)
    return client


def _ws(ws):
    with workspace_scope(ws.pk):
        return Workspace.objects.get(pk=ws.pk)


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_managers_rename_and_move_the_workspace_audited(client, cast, role):
    _login(client, cast.by_role(role))
    assert client.get("/settings/").status_code == 200
    r = client.post("/settings/", {"name": "Acme Labs", "time_zone": "Europe/Paris"})
    assert r.status_code == 302
    ws = _ws(cast.workspace)
    assert (ws.name, ws.time_zone) == ("Acme Labs", "Europe/Paris")
    with workspace_scope(ws.pk):
        entry = AuditLog.objects.get(action="workspace.update")
    assert entry.before["time_zone"] == "UTC" and entry.after["time_zone"] == "Europe/Paris"
    assert entry.actor_member_id == cast.by_role(role).pk
    bad = client.post("/settings/", {"name": "", "time_zone": "Mars/Olympus"})
    assert bad.status_code == 400


@pytest.mark.parametrize("role", ["finance", "member"])
def test_others_read_settings_but_cannot_change_them(client, cast, role):
    _login(client, cast.by_role(role))
    body = client.get("/settings/").content.decode()
    assert "data-time-zone" in body and "Save settings" not in body
    assert client.post("/settings/", {"name": "X", "time_zone": "UTC"}).status_code == 403
    assert _ws(cast.workspace).name == "Acme"
    assert client.get("/settings/audit/").status_code == 403


def test_outsider_changes_only_their_own_workspace(client, cast):
    _login(client, cast.outsider)
    client.post("/settings/", {"name": "Mine", "time_zone": "Asia/Tokyo"})
    assert _ws(cast.workspace).name == "Acme" and _ws(cast.other_workspace).name == "Mine"


def _audit_rows(body: str) -> list[str]:
    return re.findall(r'data-audit="(\d+)"', body)


def test_audit_log_page_filters_and_pages_by_cursor(client, cast):
    with workspace_scope(cast.workspace.pk):
        for i in range(55):
            budget_create(
                workspace=cast.workspace,
                actor=cast.admin,
                metric="usd",
                period="month",
                scope_type="member",
                scope_id=cast.member.pk,
                amount_usd=Decimal(i + 1),
            )
    with workspace_scope(cast.other_workspace.pk):
        api_token_create(member=cast.outsider, name="theirs", scope="read")
    _login(client, cast.owner)
    body = client.get("/settings/audit/").content.decode()
    first = _audit_rows(body)
    assert len(first) == 50 and "data-next" in body and "theirs" not in body
    older = re.search(r'href="(\?[^"]*before=\d+)" data-next', body).group(1)
    rest = _audit_rows(
        client.get("/settings/audit/" + older.replace("&amp;", "&")).content.decode()
    )
    with workspace_scope(cast.workspace.pk):
        total = AuditLog.objects.count()
    assert len(rest) == total - 50 and not set(rest) & set(first)
    only = client.get("/settings/audit/?action=api_token.create").content.decode()
    assert _audit_rows(only) == []
    mine = client.get(f"/settings/audit/?actor={cast.admin.pk}").content.decode()
    assert len(_audit_rows(mine)) == 50
    assert client.get("/settings/audit/?before=x&actor=99999999999999999999").status_code == 200


@pytest.mark.parametrize("role", ["owner", "admin", "finance", "member"])
def test_api_token_created_shown_once_and_revoked(client, cast, role):
    who = cast.by_role(role)
    _login(client, who)
    r = client.post("/settings/api-tokens/", {"name": "ci", "scope": "write"})
    body = r.content.decode()
    raw = re.search(r'<code id="new-token">(alpt_[A-Za-z0-9_]+)</code>', body).group(1)
    match = api_token_lookup(raw)
    assert match is not None and match.member_id == who.pk
    with workspace_scope(cast.workspace.pk):
        token = APIToken.objects.get(pk=match.token_id)
    assert token.scope == "write"
    again = client.get("/settings/api-tokens/").content.decode()
    assert raw not in again and token.prefix in again
    assert client.post(f"/settings/api-tokens/{token.pk}/revoke/").status_code == 302
    assert api_token_lookup(raw) is None


def test_tokens_of_others_are_hidden_and_404_across_tenants(client, cast):
    with workspace_scope(cast.workspace.pk):
        admins, _ = api_token_create(member=cast.admin, name="admins", scope="admin")
    with workspace_scope(cast.other_workspace.pk):
        theirs, _ = api_token_create(member=cast.outsider, name="theirs", scope="read")
    _login(client, cast.member)
    assert "admins" not in client.get("/settings/api-tokens/").content.decode()
    assert client.post(f"/settings/api-tokens/{admins.pk}/revoke/").status_code == 404
    _login(client, cast.owner)
    assert "admins" in client.get("/settings/api-tokens/").content.decode()
    assert client.post(f"/settings/api-tokens/{theirs.pk}/revoke/").status_code == 404
    with workspace_scope(cast.other_workspace.pk):
        assert APIToken.objects.get(pk=theirs.pk).revoked_at is None
    assert client.post(f"/settings/api-tokens/{admins.pk}/revoke/").status_code == 302


def test_gateway_keys_show_last_use_and_this_months_spend(client, cast):
    from gateway.services.keys import gateway_key_create  # the gateway's own factory path

    now = timezone.now()
    with workspace_scope(cast.workspace.pk):
        key, _raw = gateway_key_create(workspace=cast.workspace, name="laptop", member=cast.member)
        for i, cost in enumerate(("0.25", "1.5", "0.004")):
            usage(
                cast.workspace,
                at=now - dt.timedelta(minutes=i + 1),
                cost=cost,
                member=cast.member,
                gateway_key=key,
            )
        rollup_workspace(workspace=cast.workspace)
        want = UsageRecord.objects.filter(gateway_key=key).aggregate(
            s=Sum("cost_usd"), last=Max("created_at")
        )
    _login(client, cast.finance)
    body = client.get("/manage/gateway-keys/").content.decode()
    row = body.split(f'data-key-prefix="{key.prefix}"', 1)[1].split("</tr>", 1)[0]
    assert Decimal(re.search(r'data-spend="([^"]+)"', row).group(1)) == want["s"]
    assert "$1.75" in row
    last = dt.datetime.fromisoformat(re.search(r'data-last-used="([^"]+)"', row).group(1))
    assert last == want["last"]


@pytest.mark.django_db(transaction=True)
@override_settings(SITE_URL="http://127.0.0.1:9000", ALEPHANT_SIGNUP="invite")
def test_invitation_link_from_site_url_copyable_and_address_locked(client, mailoutbox):
    from tests.cast import build_cast

    cast = build_cast()
    _login(client, cast.admin)
    client.post("/members/invite/", {"email": "joiner@c.example", "role": "member"})
    token = token_from_mail(mailoutbox[0])
    assert f"http://127.0.0.1:9000/invite/{token}/" in mailoutbox[0].body
    page = client.get("/members/").content.decode()
    assert f'value="http://127.0.0.1:9000/invite/{token}/"' in page and "data-copy" in page
    assert "js/copy.js" in page and "<script>" not in page
    assert f"/invite/{token}/" not in client.get("/members/").content.decode()  # shown once
    client.post("/accounts/logout/")
    landing = client.get(f"/invite/{token}/").content.decode()
    assert "Copy link" in landing
    signup = client.get(f"/accounts/signup/?email=joiner%40c.example&next=/invite/{token}/")
    field = re.search(r'<input[^>]*name="email"[^>]*>', signup.content.decode()).group(0)
    assert 'value="joiner@c.example"' in field and "readonly" in field
    typo = client.post(
        f"/accounts/signup/?next=/invite/{token}/",
        {"email": "joiner@c.exmaple", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert typo.status_code == 200  # refused: not the invited address
    ok = client.post(
        f"/accounts/signup/?next=/invite/{token}/",
        {"email": "joiner@c.example", "password1": PASSWORD, "password2": PASSWORD},
    )
    assert ok.status_code == 302
    with workspace_scope(cast.workspace.pk):
        joined = AuditLog.objects.get(action="invitation.accept")
    assert joined.target_label == "joiner@c.example" and joined.actor_label == "joiner@c.example"


def test_budget_edit_form_shows_two_decimals(client, cast):
    with workspace_scope(cast.workspace.pk):
        budget = budget_create(
            workspace=cast.workspace,
            actor=None,
            metric="usd",
            period="month",
            scope_type="workspace",
            scope_id=cast.workspace.pk,
            amount_usd=Decimal(400),
        )
    _login(client, cast.admin)
    body = client.get(f"/manage/budgets/{budget.pk}/").content.decode()
    assert 'value="400.00"' in body and "400.000000" not in body


@pytest.mark.django_db(transaction=True)
def test_sign_up_asks_the_new_workspaces_time_zone(client):
    form = client.get("/accounts/signup/").content.decode()
    assert 'name="time_zone"' in form
    r = client.post(
        "/accounts/signup/",
        {
            "email": "tz@d.example",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "workspace_name": "Paris Co",
            "time_zone": "Europe/Paris",
        },
    )
    assert r.status_code == 302
    (membership,) = system.user_memberships(User.objects.get(email="tz@d.example").pk)
    assert _ws(Workspace(pk=membership.workspace_id)).time_zone == "Europe/Paris"
