"""REST API for budgets, alert channels, alert history and guardrail settings.

`/api/v1/budgets`, `/api/v1/alert-channels` (+ `POST .../{id}/test/`), `/api/v1/alerts`,
`/api/v1/guardrails`. Every view is a `WorkspaceViewSet` (scope, roles, same 404 for missing and
foreign ids, error shape); writes go through `billing.services`, which audit-log and republish the
workspace snapshot on commit. Owners, admins and finance change budgets and channels; a member
reads the budgets on their own chain (their keys, agents, themselves, department, workspace).
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from billing.models import Alert, AlertChannel, Budget, GuardrailSettings
from billing.models.alerts import ChannelKind
from billing.models.budgets import Metric, Period, ScopeType
from billing.selectors import alerts_visible, budget_statuses, budgets_visible
from billing.services.alerts import (
    alert_channel_create,
    alert_channel_delete,
    alert_channel_test,
    alert_channel_update,
)
from billing.services.budgets import budget_create, budget_delete, budget_update, guardrails_update
from gateway.snapshots import redis_client
from workspaces.api_base import ALL_ROLES, ErrorSerializer, WorkspaceViewSet
from workspaces.models import MANAGER_ROLES, SPEND_READER_ROLES

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
EDITORS = SPEND_READER_ROLES  # finance manages budgets as well as reading them


def _redis():
    return redis_client()


# --- budgets --------------------------------------------------------------------------------


class BudgetStatusOut(serializers.Serializer):
    period_key = serializers.CharField()
    period_start = serializers.CharField(allow_null=True)
    resets_at = serializers.CharField(allow_null=True)
    used = serializers.CharField(help_text="USD for spend budgets, else requests or tokens")
    reserved = serializers.CharField(help_text="held by calls in flight")
    remaining = serializers.CharField()
    percent = serializers.FloatField(allow_null=True)
    live = serializers.BooleanField(help_text="false: read from the ledger (no live counter)")
    base_limit = serializers.CharField(help_text="the budget's own amount")
    increase = serializers.CharField(help_text="approved temporary increases running now")
    increase_until = serializers.CharField(allow_null=True, help_text="when the first ends")


class BudgetOut(serializers.ModelSerializer):
    property_name = serializers.CharField(read_only=True, allow_null=True)
    property_value = serializers.CharField(read_only=True, allow_null=True)
    customer_id = serializers.CharField(read_only=True, allow_null=True)
    amount_usd = serializers.DecimalField(max_digits=14, decimal_places=6, allow_null=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "scope_type",
            "scope_id",
            "property_name",
            "property_value",
            "customer_id",
            "metric",
            "amount_usd",
            "limit_count",
            "period",
            "ladder",
            "throttle_at",
            "throttle_rpm",
            "hard_stop",
            "model_filter",
            "created_at",
            "updated_at",
            "status",
        ]

    @extend_schema_field(BudgetStatusOut(allow_null=True))
    def get_status(self, budget: Budget) -> dict | None:
        # From context["statuses"]: one Redis round trip for the whole page.
        found = (self.context.get("statuses") or {}).get(budget.pk)
        return found.as_dict(budget) if found else None


class BudgetIn(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False, allow_blank=True)
    scope_type = serializers.ChoiceField(choices=ScopeType.choices)
    scope_id = serializers.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        allow_null=True,
        help_text="id of the department/member/agent/key; omit for workspace",
    )
    property_name = serializers.CharField(
        max_length=64, required=False, help_text="scope_type property: Alephant-Property-<name>"
    )
    property_value = serializers.CharField(max_length=256, required=False)
    customer_id = serializers.CharField(
        max_length=256, required=False, help_text="scope_type customer: Alephant-Customer"
    )
    metric = serializers.ChoiceField(choices=Metric.choices, default=Metric.USD)
    amount_usd = serializers.DecimalField(
        max_digits=14, decimal_places=6, min_value=0, required=False, allow_null=True
    )
    limit_count = serializers.IntegerField(
        min_value=0,
        max_value=2**53,
        required=False,
        allow_null=True,
        help_text="requests or tokens per period (request/token quotas)",
    )
    period = serializers.ChoiceField(choices=Period.choices, default=Period.MONTH)
    hard_stop = serializers.BooleanField(default=True)
    ladder = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=100),
        required=False,
        max_length=10,
        min_length=1,
    )
    throttle_at = serializers.IntegerField(
        min_value=1, max_value=100, required=False, allow_null=True
    )
    throttle_rpm = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )
    model_filter = serializers.CharField(max_length=200, required=False, allow_blank=True)


class BudgetUpdateIn(BudgetIn):
    scope_type = serializers.ChoiceField(choices=ScopeType.choices, required=False)
    metric = serializers.ChoiceField(choices=Metric.choices, required=False)
    period = serializers.ChoiceField(choices=Period.choices, required=False)
    hard_stop = serializers.BooleanField(required=False)


class BudgetViewSet(WorkspaceViewSet):
    """Budgets and quotas. Owners, admins and finance write; members read their own chain."""

    queryset = Budget.objects.all()
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES}
    default_roles = EDITORS
    filter_fields = {
        "scope_type": ("scope_type", str),
        "scope_id": ("scope_id", int),
        "period": ("period", str),
        "metric": ("metric", str),
    }

    def narrow_queryset(self, queryset):
        return budgets_visible(member=self.member, queryset=queryset)

    def _out(self, budgets: list[Budget], many: bool):
        statuses = budget_statuses(workspace=self.workspace, budgets=budgets, client=_redis())
        context = {**self.get_serializer_context(), "statuses": statuses}
        return BudgetOut(budgets if many else budgets[0], many=many, context=context).data

    @extend_schema(responses={200: BudgetOut(many=True)})
    def list(self, request):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self._out(list(page), many=True))

    @extend_schema(responses={200: BudgetOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(self._out([self.get_object()], many=False))

    @extend_schema(request=BudgetIn, responses={201: BudgetOut, **ERRORS})
    def create(self, request):
        data = BudgetIn(data=request.data)
        data.is_valid(raise_exception=True)
        budget = budget_create(workspace=self.workspace, actor=self.member, **data.validated_data)
        return Response(self._out([budget], many=False), status=status.HTTP_201_CREATED)

    @extend_schema(request=BudgetUpdateIn, responses={200: BudgetOut, **ERRORS})
    def partial_update(self, request, pk=None):
        budget = self.get_object()
        data = BudgetUpdateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        budget = budget_update(budget=budget, actor=self.member, **data.validated_data)
        return Response(self._out([budget], many=False))

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        budget_delete(budget=self.get_object(), actor=self.member)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- alert channels -------------------------------------------------------------------------


class AlertChannelOut(serializers.ModelSerializer):
    class Meta:
        model = AlertChannel
        fields = ["id", "kind", "name", "url", "emails", "enabled", "created_at"]


class AlertChannelCreateOut(AlertChannelOut):
    secret = serializers.CharField(help_text="webhook signing key; shown only now")

    class Meta(AlertChannelOut.Meta):
        fields = [*AlertChannelOut.Meta.fields, "secret"]


class AlertChannelIn(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    name = serializers.CharField(max_length=120)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")
    emails = serializers.ListField(child=serializers.EmailField(), required=False, max_length=20)
    enabled = serializers.BooleanField(default=True)


class AlertChannelUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    url = serializers.URLField(max_length=500, required=False, allow_blank=True)
    emails = serializers.ListField(child=serializers.EmailField(), required=False, max_length=20)
    enabled = serializers.BooleanField(required=False)


class AlertTestOut(serializers.Serializer):
    ok = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    alert_id = serializers.IntegerField()


class AlertChannelViewSet(WorkspaceViewSet):
    """Where alerts go. Owners, admins and finance only."""

    queryset = AlertChannel.objects.all()
    default_roles = EDITORS

    @extend_schema(responses={200: AlertChannelOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), AlertChannelOut)

    @extend_schema(responses={200: AlertChannelOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(AlertChannelOut(self.get_object()).data)

    @extend_schema(request=AlertChannelIn, responses={201: AlertChannelCreateOut, **ERRORS})
    def create(self, request):
        data = AlertChannelIn(data=request.data)
        data.is_valid(raise_exception=True)
        channel = alert_channel_create(
            workspace=self.workspace, actor=self.member, **data.validated_data
        )
        return Response(AlertChannelCreateOut(channel).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AlertChannelUpdateIn, responses={200: AlertChannelOut, **ERRORS})
    def partial_update(self, request, pk=None):
        channel = self.get_object()
        data = AlertChannelUpdateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        channel = alert_channel_update(channel=channel, actor=self.member, **data.validated_data)
        return Response(AlertChannelOut(channel).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        alert_channel_delete(channel=self.get_object(), actor=self.member)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: AlertTestOut, **ERRORS})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Send a test alert through this channel now and report the outcome."""
        alert, error = alert_channel_test(channel=self.get_object(), actor=self.member)
        return Response({"ok": not error, "error": error, "alert_id": alert.pk})


# --- alert history --------------------------------------------------------------------------


class AlertOut(serializers.ModelSerializer):
    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "budget_id",
            "period_key",
            "step",
            "title",
            "message",
            "data",
            "deliveries",
            "created_at",
        ]


class AlertViewSet(WorkspaceViewSet):
    """Alert history (newest first). Spend readers see all; a member sees their chain's."""

    queryset = Alert.objects.all()
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES}
    filter_fields = {"kind": ("kind", str), "budget_id": ("budget_id", int)}

    def narrow_queryset(self, queryset):
        return alerts_visible(member=self.member, queryset=queryset)

    @extend_schema(responses={200: AlertOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), AlertOut)

    @extend_schema(responses={200: AlertOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(AlertOut(self.get_object()).data)


# --- guardrail settings ---------------------------------------------------------------------


class GuardrailsSerializer(serializers.Serializer):
    loop_breaker = serializers.BooleanField(required=False)
    loop_max_repeats = serializers.IntegerField(
        min_value=2, max_value=10_000, required=False, allow_null=True
    )
    loop_window_s = serializers.IntegerField(
        min_value=1, max_value=86_400, required=False, allow_null=True
    )
    rpm_floor = serializers.IntegerField(
        min_value=1, max_value=1_000_000, required=False, allow_null=True
    )


class GuardrailsViewSet(WorkspaceViewSet):
    """Workspace guardrails: loop breaker (refuse vs. alert only) and the per-key RPM floor."""

    queryset = GuardrailSettings.objects.all()
    action_roles = {"current": SPEND_READER_ROLES}
    default_roles = MANAGER_ROLES

    def _data(self, settings: GuardrailSettings | None) -> dict:
        return {
            "loop_breaker": bool(settings and settings.loop_breaker),
            "loop_max_repeats": settings.loop_max_repeats if settings else None,
            "loop_window_s": settings.loop_window_s if settings else None,
            "rpm_floor": settings.rpm_floor if settings else None,
        }

    @extend_schema(responses={200: GuardrailsSerializer})
    def current(self, request):
        return Response(self._data(self.get_queryset().first()))

    @extend_schema(request=GuardrailsSerializer, responses={200: GuardrailsSerializer, **ERRORS})
    def change(self, request):
        data = GuardrailsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        settings = guardrails_update(
            workspace=self.workspace, actor=self.member, **data.validated_data
        )
        return Response(self._data(settings))


router = SimpleRouter()
router.register("budgets", BudgetViewSet, basename="api-budgets")
router.register("alert-channels", AlertChannelViewSet, basename="api-alert-channels")
router.register("alerts", AlertViewSet, basename="api-alerts")

urlpatterns = [
    *router.urls,
    path(
        "guardrails/",
        GuardrailsViewSet.as_view({"get": "current", "patch": "change"}),
        name="api-guardrails",
    ),
]
