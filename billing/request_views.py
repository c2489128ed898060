"""Pages for budget increase requests.

`/budget-requests/` lists them (owners, admins and finance: every pending request with approve,
possibly for less, and deny with a reason; a member: their own and the answers);
`/budget-requests/new/?budget=<id>` is the form the gateway's 402 links to; and
`/budget-requests/link/<token>/` is where a signed Slack/email link lands: it shows the request
and acts only on POST (a link previewer fetching it decides nothing), once.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.models import Budget, BudgetRequest, RequestStatus
from billing.selectors import budgets_visible
from billing.services.budget_request_notify import link_consume, link_read
from billing.services.budget_requests import (
    DECIDERS,
    budget_request_approve,
    budget_request_create,
    budget_request_deny,
)
from workspaces.access import get_in_workspace
from workspaces.decorators import WorkspaceRequest, role_required
from workspaces.forms import apply_service_errors
from workspaces.tenancy import workspace_scope


class RequestForm(forms.Form):
    budget = forms.ModelChoiceField(queryset=Budget.objects.none())
    amount_usd = forms.DecimalField(
        max_digits=14, decimal_places=6, min_value=0, label="Amount (USD)"
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    until = forms.DateTimeField(help_text="UTC, e.g. 2026-12-31 18:00")

    def __init__(self, *args, member, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["budget"].queryset = budgets_visible(member=member).filter(metric="usd")


@role_required()
def requests_page(request: WorkspaceRequest) -> HttpResponse:
    qs = BudgetRequest.objects.filter(workspace=request.workspace).select_related(
        "budget", "requested_by__user", "decided_by__user"
    )
    decider = request.member.role in DECIDERS
    if not decider:
        qs = qs.filter(requested_by=request.member)
    return render(
        request,
        "billing/requests/list.html",
        {
            "pending": [r for r in qs if r.status == RequestStatus.PENDING],
            "decided": [r for r in qs[:200] if r.status != RequestStatus.PENDING],
            "decider": decider,
        },
    )


@role_required()
def request_new(request: WorkspaceRequest) -> HttpResponse:
    initial: dict[str, object] = {
        "until": (timezone.now() + timedelta(days=7)).strftime("%Y-%m-%d %H:%M")
    }
    if request.GET.get("budget", "").isdigit():
        initial["budget"] = int(request.GET["budget"])
    form = RequestForm(request.POST or None, member=request.member, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            created = budget_request_create(
                budget=data["budget"],
                actor=request.member,
                amount_usd=data["amount_usd"],
                reason=data["reason"],
                until=data["until"],
            )
        except (ValidationError, PermissionDenied) as exc:
            if isinstance(exc, PermissionDenied):
                exc = ValidationError({"budget": str(exc)})
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Request {created.pk} filed; you will hear the answer.")
            return redirect("budget-requests")
    return render(
        request, "billing/requests/new.html", {"form": form}, status=400 if form.errors else 200
    )


@require_POST
@role_required(*DECIDERS)
def request_decide(request: WorkspaceRequest, pk: int, verdict: str) -> HttpResponse:
    found = get_in_workspace(BudgetRequest, workspace=request.workspace, pk=pk)
    try:
        if verdict == "approve":
            budget_request_approve(
                request=found, actor=request.member, amount_usd=request.POST.get("amount_usd")
            )
        else:
            budget_request_deny(
                request=found, actor=request.member, reason=request.POST.get("reason", "")
            )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    except PermissionDenied as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"Request {pk} {found.status if verdict != 'approve' else 'approved'}."
        )
    return redirect("budget-requests")


def request_link(request: HttpRequest, token: str) -> HttpResponse:
    """A signed approve/deny link: the token is the authority (no login), once, until it expires."""
    try:
        payload = link_read(token)
    except signing.SignatureExpired:
        return render(
            request, "billing/requests/link.html", {"error": "This link expired."}, status=410
        )
    except signing.BadSignature:
        raise Http404 from None
    with workspace_scope(int(payload["w"])):
        found = (
            BudgetRequest.objects.filter(workspace_id=int(payload["w"]), pk=int(payload["r"]))
            .select_related("budget")
            .first()
        )
        if found is None:
            raise Http404
        context = {"req": found, "verdict": payload["a"], "error": ""}
        if request.method == "POST":
            context["error"] = _link_act(request, found, payload)
            found.refresh_from_db()
            context["done"] = not context["error"]
        return render(request, "billing/requests/link.html", context, status=200)


def _link_act(request: HttpRequest, found: BudgetRequest, payload: dict) -> str:
    if not link_consume(request=found, nonce=str(payload["n"])):
        return "This link was already used."
    try:
        if payload["a"] == "approve":
            budget_request_approve(
                request=found, actor=None, amount_usd=request.POST.get("amount_usd"), via="link"
            )
        else:
            reason = request.POST.get("reason") or "denied from the notification link"
            budget_request_deny(request=found, actor=None, reason=reason, via="link")
    except ValidationError as exc:
        return "; ".join(exc.messages)
    return ""
