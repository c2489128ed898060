"""REST API for budget increase requests (`/api/v1/budget-requests/`).

Anyone in the workspace files a request (a member on their own, their agents' or keys'
budgets); owners, admins and finance list every request and approve (possibly a smaller amount)
or deny with a reason; a member lists their own. Deciding one's own request is a 403.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from billing.models import Budget, BudgetRequest
from billing.services.budget_requests import (
    DECIDERS,
    budget_request_approve,
    budget_request_create,
    budget_request_deny,
)
from workspaces.api_base import ALL_ROLES, ErrorSerializer, WorkspaceViewSet, id_in_workspace

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class BudgetRequestOut(serializers.ModelSerializer):
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=6)
    approved_usd = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)

    class Meta:
        model = BudgetRequest
        fields = [
            "id",
            "budget_id",
            "requested_by_id",
            "amount_usd",
            "approved_usd",
            "reason",
            "until",
            "status",
            "decided_by_id",
            "decided_at",
            "decision_reason",
            "created_at",
        ]


class BudgetRequestIn(serializers.Serializer):
    budget_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=6, min_value=0)
    reason = serializers.CharField(max_length=2000)
    until = serializers.DateTimeField()


class ApproveIn(serializers.Serializer):
    amount_usd = serializers.DecimalField(
        max_digits=14, decimal_places=6, min_value=0, required=False, allow_null=True
    )


class DenyIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class BudgetRequestViewSet(WorkspaceViewSet):
    """Budget increase requests: file, list, approve, deny."""

    queryset = BudgetRequest.objects.select_related("budget", "requested_by")
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES, "create": ALL_ROLES}
    default_roles = DECIDERS
    filter_fields = {"status": ("status", str), "budget_id": ("budget_id", int)}

    def narrow_queryset(self, queryset):
        if self.member.role in DECIDERS:
            return queryset
        return queryset.filter(requested_by=self.member)

    @extend_schema(responses={200: BudgetRequestOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), BudgetRequestOut)

    @extend_schema(responses={200: BudgetRequestOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(BudgetRequestOut(self.get_object()).data)

    @extend_schema(request=BudgetRequestIn, responses={201: BudgetRequestOut, **ERRORS})
    def create(self, request):
        data = BudgetRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        budget = id_in_workspace(
            Budget, values.pop("budget_id"), workspace=self.workspace, field="budget_id"
        )
        created = budget_request_create(budget=budget, actor=self.member, **values)
        return Response(BudgetRequestOut(created).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ApproveIn, responses={200: BudgetRequestOut, **ERRORS})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        data = ApproveIn(data=request.data)
        data.is_valid(raise_exception=True)
        decided = budget_request_approve(
            request=self.get_object(),
            actor=self.member,
            amount_usd=data.validated_data.get("amount_usd"),
            via="api",
        )
        return Response(BudgetRequestOut(decided).data)

    @extend_schema(request=DenyIn, responses={200: BudgetRequestOut, **ERRORS})
    @action(detail=True, methods=["post"])
    def deny(self, request, pk=None):
        data = DenyIn(data=request.data)
        data.is_valid(raise_exception=True)
        decided = budget_request_deny(
            request=self.get_object(),
            actor=self.member,
            reason=data.validated_data["reason"],
            via="api",
        )
        return Response(BudgetRequestOut(decided).data)


router = SimpleRouter()
router.register("budget-requests", BudgetRequestViewSet, basename="api-budget-requests")
urlpatterns = router.urls
