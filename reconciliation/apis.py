"""REST API: the reconciliation (`/api/v1/reconciliation/`), the FOCUS export
(`/api/v1/exports/focus/`) and the provider admin keys (`/api/v1/reconciliation/admin-keys/`).
Admin keys go in and never come out (provider and `last4` only)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from alephant.replica import ReplicaReadsMixin
from core.money import usd_exact
from reconciliation import exports, selectors
from reconciliation.focus import focus_csv, focus_rows
from reconciliation.models import (
    AdminCredential,
    AdminProvider,
    ProviderCostLine,
    ReconciliationPolicy,
)
from reconciliation.params import window_from_params
from reconciliation.services.credentials import admin_credential_delete, admin_credential_set
from reconciliation.services.policy import reconciliation_policy_set
from workspaces.api_base import ErrorSerializer, WorkspaceViewSet
from workspaces.models import MANAGER_ROLES, SPEND_READER_ROLES

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}
WINDOW = [
    OpenApiParameter("since", str, description="First UTC day (YYYY-MM-DD); default 30 days ago."),
    OpenApiParameter("until", str, description="Last UTC day, inclusive; default today."),
    OpenApiParameter("period", str, enum=["month"], description="With `date`: a whole month."),
    OpenApiParameter("date", str, description="A day in the month (YYYY-MM-DD)."),
]


class ComparisonOut(serializers.Serializer):
    day = serializers.DateField()
    provider = serializers.CharField()
    model = serializers.CharField()
    provider_reported = serializers.BooleanField(source="reported")
    provider_cost_usd = serializers.SerializerMethodField()
    ledger_cost_usd = serializers.SerializerMethodField()
    difference_usd = serializers.SerializerMethodField()
    capture_rate_pct = serializers.SerializerMethodField()
    provider_input_tokens = serializers.IntegerField(source="theirs.input_tokens")
    ledger_input_tokens = serializers.IntegerField(source="ours.input_tokens")
    input_tokens_difference = serializers.IntegerField(source="input_difference")
    provider_cached_tokens = serializers.IntegerField(source="theirs.cached_tokens")
    ledger_cached_tokens = serializers.IntegerField(source="ours.cached_tokens")
    provider_output_tokens = serializers.IntegerField(source="theirs.output_tokens")
    ledger_output_tokens = serializers.IntegerField(source="ours.output_tokens")
    output_tokens_difference = serializers.IntegerField(source="output_difference")

    def get_provider_cost_usd(self, row) -> str:
        return usd_exact(row.theirs.cost)

    def get_ledger_cost_usd(self, row) -> str:
        return usd_exact(row.ours.cost)

    def get_difference_usd(self, row) -> str:
        return usd_exact(row.difference)

    def get_capture_rate_pct(self, row) -> str | None:
        rate = row.capture_rate
        return None if rate is None else f"{rate:.4f}"


class ReconciliationOut(serializers.Serializer):
    since = serializers.DateField()
    until = serializers.DateField()
    capture_threshold_pct = serializers.DecimalField(max_digits=6, decimal_places=2)
    total = ComparisonOut()
    results = ComparisonOut(many=True)


class ReconciliationViewSet(ReplicaReadsMixin, WorkspaceViewSet):
    """Provider bill vs ledger per UTC day, provider and model (owners, admins, finance)."""

    queryset = ProviderCostLine.objects.all()
    default_roles = SPEND_READER_ROLES

    @extend_schema(
        parameters=[
            *WINDOW,
            OpenApiParameter("provider", str, enum=AdminProvider.values),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses={200: ReconciliationOut, **ERRORS},
    )
    def list(self, request):
        since, until = window_from_params(request.query_params)
        provider = request.query_params.get("provider") or None
        if provider is not None and provider not in AdminProvider.values:
            raise serializers.ValidationError({"provider": list(AdminProvider.values)})
        rows = selectors.comparison(
            workspace=self.workspace, since=since, until=until, provider=provider
        )
        if request.query_params.get("format") == "csv":
            return exports.comparison_csv(rows, filename=f"reconciliation-{since}-{until}")
        total = selectors.totals(rows)
        total.provider = provider or ""
        policy = selectors.policy_for(workspace=self.workspace)
        return Response(
            ReconciliationOut(
                {
                    "since": since,
                    "until": until,
                    "capture_threshold_pct": policy.capture_threshold_pct,
                    "total": total,
                    "results": rows,
                }
            ).data
        )


class FocusExportViewSet(ReplicaReadsMixin, WorkspaceViewSet):
    """The ledger as a FOCUS 1.2 CSV (owners, admins, finance)."""

    queryset = ProviderCostLine.objects.all()
    default_roles = SPEND_READER_ROLES

    @extend_schema(parameters=WINDOW, responses={(200, "text/csv"): OpenApiTypes.STR, **ERRORS})
    def list(self, request):
        since, until = window_from_params(request.query_params)
        body = focus_csv(focus_rows(workspace=self.workspace, since=since, until=until))
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="focus-{since}-{until}.csv"'
        return response


class AdminKeyOut(serializers.ModelSerializer):
    class Meta:
        model = AdminCredential
        fields = ["id", "provider", "last4", "base_url", "created_at", "last_pulled_at",
                  "last_error"]  # fmt: skip


class AdminKeyIn(serializers.Serializer):
    provider = serializers.ChoiceField(choices=AdminProvider.choices)
    secret = serializers.CharField(max_length=500, write_only=True, trim_whitespace=True)
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)


class AdminKeyViewSet(WorkspaceViewSet):
    """Provider admin keys for reconciliation. Owners/admins only; the secret is write-only."""

    queryset = AdminCredential.objects.all()
    default_roles = MANAGER_ROLES

    @extend_schema(responses={200: AdminKeyOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset().order_by("provider"), AdminKeyOut)

    @extend_schema(request=AdminKeyIn, responses={201: AdminKeyOut, **ERRORS})
    def create(self, request):
        data = AdminKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        credential = admin_credential_set(
            workspace=self.workspace, actor=self.member, **data.validated_data
        )
        return Response(AdminKeyOut(credential).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        admin_credential_delete(credential=self.get_object(), actor=self.member)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PolicyOut(serializers.ModelSerializer):
    class Meta:
        model = ReconciliationPolicy
        fields = ["capture_threshold_pct", "drift_limit_usd", "lookback_days"]


class PolicyIn(serializers.Serializer):
    capture_threshold_pct = serializers.DecimalField(max_digits=6, decimal_places=2)
    drift_limit_usd = serializers.DecimalField(max_digits=18, decimal_places=6)
    lookback_days = serializers.IntegerField(min_value=1, max_value=31)


class PolicyViewSet(WorkspaceViewSet):
    """The alert thresholds: read by finance too, set by owners and admins."""

    queryset = ReconciliationPolicy.objects.all()
    action_roles = {"list": SPEND_READER_ROLES}

    @extend_schema(responses={200: PolicyOut, **ERRORS})
    def list(self, request):
        return Response(PolicyOut(selectors.policy_for(workspace=self.workspace)).data)

    @extend_schema(request=PolicyIn, responses={200: PolicyOut, **ERRORS})
    def create(self, request):
        data = PolicyIn(data=request.data)
        data.is_valid(raise_exception=True)
        policy = reconciliation_policy_set(
            workspace=self.workspace, actor=self.member, **data.validated_data
        )
        return Response(PolicyOut(policy).data)
