"""`GET /api/v1/efficiency` (the latest report's grades, ranked by avoidable dollars) and
`GET /api/v1/efficiency/<id>` (one grade with its signals and evidence); `POST
/api/v1/efficiency/recompute/`; `GET|PUT /api/v1/efficiency/settings/` (dollar floors). Owners,
admins and finance read everything; a member reads their own grade and their agents'. Foreign
and missing ids are the same 404."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from efficiency import selectors, services
from efficiency.cache_policies import cache_policy_delete, cache_policy_set
from efficiency.models import (
    CacheScope,
    EfficiencyGrade,
    EfficiencyReport,
    EfficiencySettings,
    EfficiencySignal,
    EntityKind,
    Period,
    ResponseCachePolicy,
)
from gateway.models import GatewayKey
from workspaces.api_base import (
    ALL_ROLES,
    LIMIT_OFFSET_PARAMETERS,
    ErrorSerializer,
    WorkspaceViewSet,
    id_in_workspace,
)
from workspaces.models import SPEND_READER_ROLES, Agent

ERRORS = {401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class SignalOut(serializers.ModelSerializer):
    class Meta:
        model = EfficiencySignal
        fields = ["id", "kind", "veto", "impact_usd", "summary", "evidence"]


class TrendOut(serializers.Serializer):
    """This period against the last (`efficiency/trends.py`): null for an entity new this
    period or when the last period was never computed."""

    previous_grade = serializers.CharField()
    waste_change_usd = serializers.DecimalField(max_digits=24, decimal_places=12)
    direction = serializers.ChoiceField(choices=["better", "worse", "same"])
    causes = serializers.ListField(child=serializers.CharField())
    text = serializers.CharField()


class GradeOut(serializers.ModelSerializer):
    entity_id = serializers.IntegerField()
    trend = serializers.SerializerMethodField()
    graded = serializers.BooleanField()
    period = serializers.CharField(source="report.period")
    period_start = serializers.DateTimeField(source="report.period_start")
    period_end = serializers.DateTimeField(source="report.period_end")
    computed_at = serializers.DateTimeField(source="report.computed_at")
    input_digest = serializers.CharField(source="report.input_digest")
    thresholds = serializers.DictField(source="report.thresholds", child=serializers.CharField())

    class Meta:
        model = EfficiencyGrade
        # Ranked by `waste_usd` (avoidable dollars), largest first, within each entity kind.
        fields = [
            "id", "entity_kind", "entity_id", "label", "period", "period_start", "period_end",
            "computed_at", "input_digest", "thresholds", "rank", "waste_usd", "graded", "score",
            "grade", "verdict", "reason", "capped_by", "requests", "spend_usd", "saved_usd",
            "breakdown", "trend",
        ]  # fmt: skip

    @extend_schema_field(TrendOut(allow_null=True))
    def get_trend(self, grade: EfficiencyGrade) -> Any:
        trend = self.context.get("trends", {}).get((grade.entity_kind, grade.entity_id))
        return None if trend is None else TrendOut(trend).data


class GradeDetailOut(GradeOut):
    signals = serializers.SerializerMethodField()

    class Meta(GradeOut.Meta):
        fields = [*GradeOut.Meta.fields, "signals"]

    @extend_schema(responses=SignalOut(many=True))
    def get_signals(self, grade: EfficiencyGrade) -> Any:
        signals = selectors.grade_signals(workspace=self.context["workspace"], grade=grade)
        return SignalOut(signals, many=True).data


class EfficiencyViewSet(WorkspaceViewSet):
    """Efficiency grades of the latest computed period (`?period=week|month`)."""

    queryset = EfficiencyGrade.objects.select_related("report")
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES}
    filter_fields = {"entity_kind": ("entity_kind", str), "grade": ("grade", str),
                     "verdict": ("verdict", str)}  # fmt: skip

    def narrow_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.member.role in SPEND_READER_ROLES:
            return queryset
        own = Q(entity_kind=EntityKind.MEMBER, member_id=self.member.pk) | Q(
            entity_kind=EntityKind.AGENT, agent__owner_id=self.member.pk
        )
        return queryset.filter(own)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "trends": getattr(self, "trends", {})}

    def _trends_for(self, report: EfficiencyReport, *, ensure_previous: bool) -> None:
        # Like the ranking page (which computes the last period once if it is missing) and the
        # detail page (which only reads it).
        previous: EfficiencyReport | None
        if ensure_previous:
            previous = services.efficiency_previous_ensure(workspace=self.workspace, report=report)
        else:
            previous = selectors.previous_report(workspace=self.workspace, report=report)
        self.trends = selectors.report_trends(
            workspace=self.workspace, report=report, previous=previous
        )

    @extend_schema(
        parameters=[OpenApiParameter("period", str, enum=Period.values), *LIMIT_OFFSET_PARAMETERS],
        responses={200: GradeOut(many=True), **ERRORS},
    )
    def list(self, request):
        period = request.query_params.get("period", Period.WEEK)
        report = selectors.latest_report(workspace=self.workspace, period=period)
        grades = self.get_queryset().filter(report=report) if report else self.get_queryset().none()
        if report is not None:
            self._trends_for(report, ensure_previous=True)
        return self.paginated(grades.order_by("entity_kind", "rank"), GradeOut)

    @extend_schema(responses={200: GradeDetailOut, **ERRORS})
    def retrieve(self, request, pk=None):
        grade = self.get_object()
        self._trends_for(grade.report, ensure_previous=False)
        return Response(GradeDetailOut(grade, context=self.get_serializer_context()).data)


# --- recompute and floors ------------------------------------------------------------------


class RecomputeIn(serializers.Serializer):
    period = serializers.ChoiceField(choices=Period.choices, default=Period.WEEK)
    # Recompute a stored report's period instead of the current one (to check its digest).
    report_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)


class ReportOut(serializers.ModelSerializer):
    grades = serializers.SerializerMethodField()

    class Meta:
        model = EfficiencyReport
        fields = ["id", "period", "period_start", "period_end", "computed_at", "rows",
                  "spend_usd", "saved_usd", "input_digest", "thresholds", "grades"]  # fmt: skip

    @extend_schema_field(serializers.IntegerField())
    def get_grades(self, report: EfficiencyReport) -> int:
        return report.grades.count()


class EfficiencyRecomputeViewSet(WorkspaceViewSet):
    """`POST /api/v1/efficiency/recompute/`: recompute from the ledger now (owners, admins,
    finance). The same ledger and thresholds give the same `input_digest` and grades."""

    queryset = EfficiencyReport.objects.all()
    action_roles = {"create": SPEND_READER_ROLES}

    @extend_schema(request=RecomputeIn, responses={200: ReportOut, 400: ErrorSerializer,
                                                   **ERRORS})  # fmt: skip
    def create(self, request):
        data = RecomputeIn(data=request.data)
        data.is_valid(raise_exception=True)
        period, at = data.validated_data["period"], None
        if "report_id" in data.validated_data:
            stored = get_object_or_404(self.get_queryset(), pk=data.validated_data["report_id"])
            period, at = stored.period, stored.period_start
        report = services.efficiency_compute(workspace=self.workspace, period=period, at=at)
        return Response(ReportOut(report).data)


class SettingsIO(serializers.Serializer):
    """The workspace's own dollar floors; null: the default (see `thresholds` on a grade)."""

    grade_min_usd = serializers.DecimalField(max_digits=24, decimal_places=12, min_value=0,
                                             allow_null=True)  # fmt: skip
    signal_min_usd = serializers.DecimalField(max_digits=24, decimal_places=12, min_value=0,
                                              allow_null=True)  # fmt: skip


class EfficiencySettingsViewSet(WorkspaceViewSet):
    """`GET|PUT /api/v1/efficiency/settings/`: the grade and signal floors (owners and admins
    write; finance reads). Applies from the next compute."""

    queryset = EfficiencySettings.objects.all()
    action_roles = {"show": SPEND_READER_ROLES}

    @extend_schema(responses={200: SettingsIO, **ERRORS})
    def show(self, request):
        own = selectors.workspace_settings(workspace=self.workspace)
        return Response(SettingsIO(own or {"grade_min_usd": None, "signal_min_usd": None}).data)

    @extend_schema(request=SettingsIO, responses={200: SettingsIO, 400: ErrorSerializer, **ERRORS})
    def put(self, request):
        data = SettingsIO(data=request.data)
        data.is_valid(raise_exception=True)
        own = services.efficiency_settings_set(workspace=self.workspace, **data.validated_data)
        return Response(SettingsIO(own).data)


# --- response cache opt-ins -----------------------------------------------------------------


class CachePolicyOut(serializers.ModelSerializer):
    class Meta:
        model = ResponseCachePolicy
        fields = ["id", "scope", "gateway_key_id", "agent_id", "enabled", "ttl_seconds",
                  "updated_at"]  # fmt: skip


class CachePolicyIn(serializers.Serializer):
    scope = serializers.ChoiceField(choices=CacheScope.choices)
    gateway_key_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    agent_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False)
    enabled = serializers.BooleanField(default=True)
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=30 * 86400, default=3600)


class CachePolicyViewSet(WorkspaceViewSet):
    """Opt-ins to the gateway's exact-match response cache (workspace, key or agent).
    Owners and admins write; finance reads."""

    queryset = ResponseCachePolicy.objects.all()
    action_roles = {"list": SPEND_READER_ROLES}

    @extend_schema(responses={200: CachePolicyOut(many=True), **ERRORS})
    def list(self, request):
        return self.paginated(self.get_queryset(), CachePolicyOut)

    @extend_schema(request=CachePolicyIn, responses={201: CachePolicyOut, 400: ErrorSerializer,
                                                     **ERRORS})  # fmt: skip
    def create(self, request):
        data = CachePolicyIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        policy = cache_policy_set(
            workspace=self.workspace, scope=v["scope"], enabled=v["enabled"],
            ttl_seconds=v["ttl_seconds"],
            gateway_key=id_in_workspace(GatewayKey, v.get("gateway_key_id"),
                                        workspace=self.workspace, field="gateway_key_id"),
            agent=id_in_workspace(Agent, v.get("agent_id"), workspace=self.workspace,
                                  field="agent_id"),
        )  # fmt: skip
        return Response(CachePolicyOut(policy).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        cache_policy_delete(workspace=self.workspace, policy=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
