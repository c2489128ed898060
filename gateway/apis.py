"""REST API for provider keys (BYO credentials) and gateway keys.

Secrets go in and never come out: provider keys answer with provider, name and `last4`;
a gateway key's `key` appears exactly once, in the create response.
"""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from gateway import selectors
from gateway.models import GatewayKey, Provider, ProviderCredential
from gateway.services import keys as key_services
from gateway.services.provider_check import provider_key_test
from gateway.services.validation import MAX_SECRET_CHARS
from workspaces.api_base import (
    ALL_ROLES,
    ErrorSerializer,
    WorkspaceViewSet,
    id_in_workspace,
)
from workspaces.models import MANAGER_ROLES, Agent, Member

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def _id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=2**63 - 1, **kwargs)


# --- provider keys --------------------------------------------------------------------------


class ProviderKeyOut(serializers.ModelSerializer):
    class Meta:
        model = ProviderCredential
        fields = [
            "id",
            "provider",
            "name",
            "last4",
            "base_url",
            "api_version",
            "organization",
            "timeout_s",
            "created_at",
            "updated_at",
        ]


class ProviderKeyCreateIn(serializers.Serializer):
    # The error never echoes the input: a secret pasted into the wrong field stays unseen.
    provider = serializers.ChoiceField(
        choices=Provider.choices,
        error_messages={
            "invalid_choice": "Unknown provider; one of: " + ", ".join(Provider.values) + "."
        },
    )
    name = serializers.CharField(max_length=100)
    secret = serializers.CharField(
        max_length=MAX_SECRET_CHARS,
        allow_blank=True,
        trim_whitespace=True,
        write_only=True,
        style={"input_type": "password"},
    )
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    api_version = serializers.CharField(max_length=40, required=False, allow_blank=True)
    organization = serializers.CharField(max_length=120, required=False, allow_blank=True)
    timeout_s = serializers.IntegerField(min_value=1, max_value=600, required=False)


class ProviderKeyUpdateIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    secret = serializers.CharField(
        max_length=MAX_SECRET_CHARS,
        allow_blank=True,
        required=False,
        write_only=True,
        style={"input_type": "password"},
    )
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    api_version = serializers.CharField(max_length=40, required=False, allow_blank=True)
    organization = serializers.CharField(max_length=120, required=False, allow_blank=True)
    timeout_s = serializers.IntegerField(min_value=1, max_value=600, required=False)


class ProviderKeyTestOut(serializers.Serializer):
    ok = serializers.BooleanField()
    status = serializers.IntegerField(allow_null=True, help_text="the provider's HTTP status")
    message = serializers.CharField()


class ProviderKeyViewSet(WorkspaceViewSet):
    """Provider credentials (BYO keys). Owners/admins only. The secret is write-only."""

    queryset = ProviderCredential.objects.all()
    default_roles = MANAGER_ROLES
    filter_fields = {"provider": ("provider", str), "name": ("name", str)}

    @extend_schema(responses={200: ProviderKeyOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), ProviderKeyOut)

    @extend_schema(responses={200: ProviderKeyOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(ProviderKeyOut(self.get_object()).data)

    @extend_schema(request=ProviderKeyCreateIn, responses={201: ProviderKeyOut, **ERRORS})
    def create(self, request):
        data = ProviderKeyCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        credential = key_services.provider_key_create(
            workspace=self.workspace, actor=self.member, **data.validated_data
        )
        return Response(ProviderKeyOut(credential).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProviderKeyUpdateIn, responses={200: ProviderKeyOut, **ERRORS})
    def partial_update(self, request, pk=None):
        credential = self.get_object()
        data = ProviderKeyUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        credential = key_services.provider_key_update(
            credential=credential, actor=self.member, **data.validated_data
        )
        return Response(ProviderKeyOut(credential).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        key_services.provider_key_delete(credential=self.get_object(), actor=self.member)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: ProviderKeyTestOut, **ERRORS})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Test connection: list the provider's models with the stored key (no tokens spent).
        Answers whether the provider accepted it; never the secret."""
        result = provider_key_test(credential=self.get_object(), actor=self.member)
        return Response({"ok": result.ok, "status": result.status, "message": result.message})


# --- gateway keys ---------------------------------------------------------------------------


class GatewayKeyOut(serializers.ModelSerializer):
    class Meta:
        model = GatewayKey
        fields = [
            "id",
            "name",
            "prefix",
            "member_id",
            "agent_id",
            "status",
            "allowed_models",
            "rpm",
            "tpm",
            "expires_at",
            "revoked_at",
            "created_by_id",
            "created_at",
            "updated_at",
        ]


class GatewayKeyCreateOut(GatewayKeyOut):
    key = serializers.CharField(help_text="The key itself. Returned only once, here.")

    class Meta(GatewayKeyOut.Meta):
        fields = [*GatewayKeyOut.Meta.fields, "key"]


class _KeyLimits(serializers.Serializer):
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        max_length=200,
        required=False,
        allow_null=True,
        help_text="Model names this key may call; null means any.",
    )
    rpm = serializers.IntegerField(
        min_value=1, max_value=2_000_000_000, required=False, allow_null=True
    )
    tpm = serializers.IntegerField(
        min_value=1, max_value=2_000_000_000, required=False, allow_null=True
    )


class GatewayKeyCreateIn(_KeyLimits):
    name = serializers.CharField(max_length=100)
    member_id = _id_field(required=False, allow_null=True)
    agent_id = _id_field(required=False, allow_null=True)

    def validate(self, attrs):
        if (attrs.get("member_id") is None) == (attrs.get("agent_id") is None):
            raise serializers.ValidationError(
                {"member_id": ["Give exactly one of member_id or agent_id."]}
            )
        return attrs


class GatewayKeyUpdateIn(_KeyLimits):
    name = serializers.CharField(max_length=100, required=False)


class GatewayKeyViewSet(WorkspaceViewSet):
    """Gateway keys (what clients send as `Authorization: Bearer alph_...`).

    Everyone may issue keys to themselves and their own agents; owners/admins to anyone.
    Members see the keys they (or their agents) hold; owners/admins see all.
    """

    queryset = GatewayKey.objects.all()
    default_roles = ALL_ROLES
    filter_fields = {
        "member_id": ("member_id", int),
        "agent_id": ("agent_id", int),
        "prefix": ("prefix", str),
    }

    def narrow_queryset(self, queryset: QuerySet) -> QuerySet:
        visible = selectors.gateway_keys_visible_to(workspace=self.workspace, member=self.member)
        return queryset.filter(pk__in=visible.values("pk"))

    @extend_schema(responses={200: GatewayKeyOut(many=True)})
    def list(self, request):
        return self.paginated(self.get_queryset(), GatewayKeyOut)

    @extend_schema(responses={200: GatewayKeyOut, **ERRORS})
    def retrieve(self, request, pk=None):
        return Response(GatewayKeyOut(self.get_object()).data)

    @extend_schema(request=GatewayKeyCreateIn, responses={201: GatewayKeyCreateOut, **ERRORS})
    def create(self, request):
        data = GatewayKeyCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = dict(data.validated_data)
        member = id_in_workspace(
            Member, v.pop("member_id", None), workspace=self.workspace, field="member_id"
        )
        agent = id_in_workspace(
            Agent, v.pop("agent_id", None), workspace=self.workspace, field="agent_id"
        )
        key, raw = key_services.gateway_key_create(
            workspace=self.workspace, actor=self.member, member=member, agent=agent, **v
        )
        body = dict(GatewayKeyOut(key).data, key=raw)
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=GatewayKeyUpdateIn, responses={200: GatewayKeyOut, **ERRORS})
    def partial_update(self, request, pk=None):
        key = self.get_object()
        data = GatewayKeyUpdateIn(data=request.data)
        data.is_valid(raise_exception=True)
        key = key_services.gateway_key_update(key=key, actor=self.member, **data.validated_data)
        return Response(GatewayKeyOut(key).data)

    @extend_schema(request=None, responses={200: GatewayKeyOut, **ERRORS})
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        key = key_services.gateway_key_revoke(key=self.get_object(), actor=self.member)
        return Response(GatewayKeyOut(key).data)
