"""`GET /api/v1/efficiency` (the latest report's grades) and `GET /api/v1/efficiency/<id>`
(one grade with its signals and evidence). Owners, admins and finance read everything; a
member reads their own grade and their agents'. Foreign and missing ids are the same 404."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from efficiency import selectors
from efficiency.models import EfficiencyGrade, EfficiencySignal, EntityKind, Period
from workspaces.api_base import (
    ALL_ROLES,
    LIMIT_OFFSET_PARAMETERS,
    SPEND_READERS,
    ErrorSerializer,
    WorkspaceViewSet,
)

ERRORS = {401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class SignalOut(serializers.ModelSerializer):
    class Meta:
        model = EfficiencySignal
        fields = ["id", "kind", "veto", "impact_usd", "summary", "evidence"]


class GradeOut(serializers.ModelSerializer):
    entity_id = serializers.IntegerField()
    period = serializers.CharField(source="report.period")
    period_start = serializers.DateTimeField(source="report.period_start")
    period_end = serializers.DateTimeField(source="report.period_end")
    computed_at = serializers.DateTimeField(source="report.computed_at")

    class Meta:
        model = EfficiencyGrade
        fields = [
            "id", "entity_kind", "entity_id", "label", "period", "period_start", "period_end",
            "computed_at", "rank", "score", "grade", "verdict", "reason", "capped_by",
            "requests", "spend_usd", "saved_usd", "waste_usd",
        ]  # fmt: skip


class GradeDetailOut(GradeOut):
    signals = serializers.SerializerMethodField()

    class Meta(GradeOut.Meta):
        fields = [*GradeOut.Meta.fields, "signals"]

    @extend_schema(responses=SignalOut(many=True))
    def get_signals(self, grade: EfficiencyGrade) -> list[dict]:
        signals = selectors.grade_signals(workspace=self.context["workspace"], grade=grade)
        return SignalOut(signals, many=True).data


class EfficiencyViewSet(WorkspaceViewSet):
    """Efficiency grades of the latest computed period (`?period=week|month`)."""

    queryset = EfficiencyGrade.objects.select_related("report")
    action_roles = {"list": ALL_ROLES, "retrieve": ALL_ROLES}
    filter_fields = {"entity_kind": ("entity_kind", str), "grade": ("grade", str),
                     "verdict": ("verdict", str)}  # fmt: skip

    def narrow_queryset(self, queryset: QuerySet) -> QuerySet:
        if self.member.role in SPEND_READERS:
            return queryset
        own = Q(entity_kind=EntityKind.MEMBER, member_id=self.member.pk) | Q(
            entity_kind=EntityKind.AGENT, agent__owner_id=self.member.pk
        )
        return queryset.filter(own)

    @extend_schema(
        parameters=[OpenApiParameter("period", str, enum=Period.values), *LIMIT_OFFSET_PARAMETERS],
        responses={200: GradeOut(many=True), **ERRORS},
    )
    def list(self, request):
        period = request.query_params.get("period", Period.WEEK)
        report = selectors.latest_report(workspace=self.workspace, period=period)
        grades = self.get_queryset().filter(report=report) if report else self.get_queryset().none()
        return self.paginated(grades.order_by("entity_kind", "rank"), GradeOut)

    @extend_schema(responses={200: GradeDetailOut, **ERRORS})
    def retrieve(self, request, pk=None):
        grade = self.get_object()
        return Response(GradeDetailOut(grade, context=self.get_serializer_context()).data)
