"""REST API for prepaid budgets and corrections: `POST /api/v1/budgets/{id}/top-up/` and
`POST /api/v1/budgets/{id}/reset/` (owners, admins, finance), and
`GET /api/v1/budgets/{id}/top-ups/` (the balance history; anyone who can read the budget)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from billing.models import Budget, BudgetTopUp
from billing.selectors import budgets_visible
from billing.services.topups import budget_reset, budget_top_up
from gateway.snapshots import redis_client
from workspaces.api_base import ALL_ROLES, ErrorSerializer, WorkspaceViewSet
from workspaces.models import SPEND_READER_ROLES

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class TopUpIn(serializers.Serializer):
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=6, min_value=0)
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class TopUpOut(serializers.ModelSerializer):
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=6)
    balance_after_usd = serializers.DecimalField(max_digits=14, decimal_places=6)

    class Meta:
        model = BudgetTopUp
        fields = [
            "id",
            "budget_id",
            "amount_usd",
            "balance_after_usd",
            "note",
            "created_by_id",
            "created_at",
        ]


class ResetIn(serializers.Serializer):
    reason = serializers.CharField(max_length=1000)


class ResetOut(serializers.Serializer):
    credit_usd = serializers.DecimalField(max_digits=14, decimal_places=6)
    until = serializers.DateTimeField()
    request_id = serializers.IntegerField(help_text="the increase recording the reset")


class BudgetTopUpViewSet(WorkspaceViewSet):
    """Top-ups of a prepaid (lifetime) budget."""

    queryset = Budget.objects.all()
    action_roles = {"history": ALL_ROLES}
    default_roles = SPEND_READER_ROLES

    def narrow_queryset(self, queryset):
        return budgets_visible(member=self.member, queryset=queryset)

    @extend_schema(request=TopUpIn, responses={201: TopUpOut, **ERRORS})
    def create(self, request, pk=None):
        data = TopUpIn(data=request.data)
        data.is_valid(raise_exception=True)
        done = budget_top_up(budget=self.get_object(), actor=self.member, **data.validated_data)
        return Response(TopUpOut(done).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ResetIn, responses={201: ResetOut, **ERRORS})
    def reset(self, request, pk=None):
        """Reset a periodic budget for the rest of its period (a credit of its spend so far)."""
        data = ResetIn(data=request.data)
        data.is_valid(raise_exception=True)
        done = budget_reset(
            budget=self.get_object(),
            actor=self.member,
            reason=data.validated_data["reason"],
            client=redis_client(),
        )
        out = {"credit_usd": done.approved_usd, "until": done.until, "request_id": done.pk}
        return Response(ResetOut(out).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: TopUpOut(many=True), **ERRORS})
    def history(self, request, pk=None):
        budget = self.get_object()
        rows = BudgetTopUp.objects.filter(workspace_id=self.workspace.pk, budget=budget)[:500]
        return Response(TopUpOut(rows, many=True).data)


urlpatterns = [
    path(
        "budgets/<int:pk>/reset/",
        BudgetTopUpViewSet.as_view({"post": "reset"}),
        name="api-budget-reset",
    ),
    path(
        "budgets/<int:pk>/top-up/",
        BudgetTopUpViewSet.as_view({"post": "create"}),
        name="api-budget-top-up",
    ),
    path(
        "budgets/<int:pk>/top-ups/",
        BudgetTopUpViewSet.as_view({"get": "history"}),
        name="api-budget-top-ups",
    ),
]
