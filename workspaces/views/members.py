"""Members, invitations (sending, revoking, accepting) and member limits."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from workspaces.access import get_in_workspace
from workspaces.adapters import PENDING_INVITATION_KEY
from workspaces.decorators import (
    WorkspaceRequest,
    role_required,
    workspace_required,
)
from workspaces.forms import (
    InvitationForm,
    MemberForm,
    MemberLimitsForm,
)
from workspaces.middleware import SESSION_KEY
from workspaces.models import MANAGER_ROLES, Invitation, Member
from workspaces.selectors import (
    invitation_list_pending,
    member_limits_by_member,
    member_list,
)
from workspaces.services import directory
from workspaces.services.invitations import (
    InvitationError,
    invitation_accept,
    invitation_check,
    invitation_url,
)
from workspaces.services.limits import member_limits_set
from workspaces.views.common import add_service_errors

# --- Members and invitations ----------------------------------------------------------------


INVITE_LINK_KEY = "alephant_invite_link"


def _members_page(request: WorkspaceRequest, *, form: InvitationForm | None, status: int = 200):
    workspace = request.workspace
    members = list(member_list(workspace=workspace))
    limits = member_limits_by_member(workspace=workspace)
    for m in members:
        m.limits_row = limits.get(m.pk)  # type: ignore[attr-defined]
    if request.member.can_manage:
        for m in members:  # one small edit form per row
            m.edit_form = MemberForm(  # type: ignore[attr-defined]
                workspace=workspace,
                initial={"role": m.role, "department": m.department_id},
                prefix=f"m{m.pk}",
            )
            m.limits_form = _limits_form(m.limits_row, prefix=f"l{m.pk}")  # type: ignore[attr-defined]
    context = {
        "members": members,
        "invitations": (
            invitation_list_pending(workspace=workspace) if request.member.can_manage else []
        ),
        "form": form,
        "invite_link": request.session.pop(INVITE_LINK_KEY, None),
    }
    return render(request, "workspaces/members.html", context, status=status)


@workspace_required
def members(request: WorkspaceRequest) -> HttpResponse:
    form = InvitationForm(workspace=request.workspace) if request.member.can_manage else None
    return _members_page(request, form=form)


@require_POST
@role_required(*MANAGER_ROLES)
def member_invite(request: WorkspaceRequest) -> HttpResponse:
    form = InvitationForm(request.POST, workspace=request.workspace)
    if form.is_valid():
        try:
            issued = directory.invitation_send(
                workspace=request.workspace,
                actor=request.member,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                department=form.cleaned_data["department"],
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, f"Invitation emailed to {issued.invitation.email}.")
            # Shown once on the next page (with a copy button), for sharing by other means.
            request.session[INVITE_LINK_KEY] = {"email": issued.invitation.email, "url": issued.url}
            return redirect("members")
    return _members_page(request, form=form, status=400)


@require_POST
@role_required(*MANAGER_ROLES)
def invitation_revoke_view(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    invitation = get_in_workspace(Invitation, workspace=request.workspace, pk=invitation_id)
    directory.invitation_withdraw(invitation=invitation, actor=request.member)
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("members")


def _service_error_message(error: ValidationError) -> str:
    return " ".join(error.messages)


@require_POST
@role_required(*MANAGER_ROLES)
def member_update_view(request: WorkspaceRequest, member_id: int) -> HttpResponse:
    workspace = request.workspace
    target = get_in_workspace(
        Member.objects.select_related("user", "workspace"), workspace=workspace, pk=member_id
    )
    form = MemberForm(request.POST, workspace=workspace, prefix=f"m{target.pk}")
    if not form.is_valid():
        messages.error(request, f"{target.user.email}: " + form.errors.as_text())
        return redirect("members")
    try:
        directory.member_update(
            member=target,
            actor=request.member,
            role=form.cleaned_data["role"],
            department=form.cleaned_data["department"],
        )
    except ValidationError as exc:
        messages.error(request, f"{target.user.email}: {_service_error_message(exc)}")
    else:
        messages.success(request, f"{target.user.email} updated.")
    return redirect("members")


def _limits_form(row, *, prefix: str, data=None) -> MemberLimitsForm:
    initial = {}
    if row is not None:
        initial = {
            "allowed_models": ", ".join(row.allowed_models or ()),
            "rpm": row.rpm,
            "tpm": row.tpm,
            "key_lifetime_days": row.key_lifetime_days,
            "keys_expire_at": row.keys_expire_at,
        }
    return MemberLimitsForm(data, initial=initial, prefix=prefix)


@require_POST
@role_required(*MANAGER_ROLES)
def member_limits_view(request: WorkspaceRequest, member_id: int) -> HttpResponse:
    """Set a member's limits from the members page (owners/admins; the API is the same
    service, `PATCH /api/v1/members/<id>/limits/`)."""
    target = get_in_workspace(
        Member.objects.select_related("user", "workspace"),
        workspace=request.workspace,
        pk=member_id,
    )
    form = _limits_form(None, prefix=f"l{target.pk}", data=request.POST)
    if not form.is_valid():
        messages.error(request, f"{target.user.email}: " + form.errors.as_text())
        return redirect("members")
    data = form.cleaned_data
    try:
        member_limits_set(
            member=target,
            actor=request.member,
            allowed_models=[m.strip() for m in data["allowed_models"].split(",") if m.strip()]
            or None,
            rpm=data["rpm"],
            tpm=data["tpm"],
            key_lifetime_days=data["key_lifetime_days"],
            keys_expire_at=data["keys_expire_at"],
        )
    except ValidationError as exc:
        messages.error(request, f"{target.user.email}: {_service_error_message(exc)}")
    else:
        messages.success(request, f"Limits of {target.user.email} saved; their keys follow them.")
    return redirect("members")


@require_POST
@role_required(*MANAGER_ROLES)
def member_remove_view(request: WorkspaceRequest, member_id: int) -> HttpResponse:
    target = get_in_workspace(
        Member.objects.select_related("user", "workspace"),
        workspace=request.workspace,
        pk=member_id,
    )
    email = target.user.email
    try:
        directory.member_remove(member=target, actor=request.member)
    except ValidationError as exc:
        messages.error(request, f"{email}: {_service_error_message(exc)}")
    else:
        messages.success(request, f"{email} was removed from the workspace.")
    return redirect("members")


_PROBLEM_STATUS = {
    InvitationError.INVALID: 404,
    InvitationError.EXPIRED: 410,
    InvitationError.USED: 410,
    InvitationError.REVOKED: 410,
    InvitationError.WRONG_EMAIL: 403,
}


def _invitation_problem(request: HttpRequest, error: InvitationError) -> HttpResponse:
    context = {"reason": error.reason, "invitation": error.invitation}
    return render(
        request,
        "workspaces/invitation_problem.html",
        context,
        status=_PROBLEM_STATUS[error.reason],
    )


@require_http_methods(["GET", "POST"])
def invitation_accept_view(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link. Logged out: remember it and offer sign-up / log-in, which come back
    here. Logged in: confirm with a POST (a GET never changes anything)."""
    user = request.user if request.user.is_authenticated else None
    try:
        invitation = invitation_check(token=token)
    except InvitationError as exc:
        # Just signed up through this link: the adapter already accepted it.
        if (
            exc.reason == InvitationError.USED
            and user is not None
            and exc.invitation is not None
            and exc.invitation.accepted_by_id == user.pk
        ):
            request.session[SESSION_KEY] = exc.invitation.workspace_id
            request.session.pop(PENDING_INVITATION_KEY, None)
            messages.success(request, f"Welcome to {exc.invitation.workspace.name}.")
            return redirect("home")
        return _invitation_problem(request, exc)

    if user is None:
        request.session[PENDING_INVITATION_KEY] = {
            "token": token,
            "email": invitation.email,
            "workspace_id": invitation.workspace_id,
            "workspace_name": invitation.workspace.name,
        }
        here = request.path
        context = {
            "invitation": invitation,
            "invite_url": invitation_url(token),
            "signup_url": reverse("account_signup")
            + "?"
            + urlencode({"email": invitation.email, "next": here}),
            "login_url": reverse("account_login") + "?" + urlencode({"next": here}),
        }
        return render(request, "workspaces/invitation_accept.html", context)

    if request.method == "POST":
        try:
            member = invitation_accept(token=token, user=user)
        except InvitationError as exc:
            return _invitation_problem(request, exc)
        request.session[SESSION_KEY] = member.workspace_id
        request.session.pop(PENDING_INVITATION_KEY, None)
        messages.success(request, f"You joined {member.workspace.name} as {member.role}.")
        return redirect("home")

    if user.email.lower() != invitation.email.lower():
        return _invitation_problem(
            request, InvitationError(InvitationError.WRONG_EMAIL, invitation)
        )
    return render(
        request,
        "workspaces/invitation_accept.html",
        {"invitation": invitation, "invite_url": invitation_url(token)},
    )
