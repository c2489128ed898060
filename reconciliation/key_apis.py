"""REST API for provider key links (`/api/v1/reconciliation/key-links/`): which provider-side key
id each OpenAI/Anthropic call key is, so reconciliation can compare capture per key. Listed for
spend readers, set by owners and admins; ids are the call keys' (`/api/v1/provider-keys/`)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from gateway.models import ProviderCredential
from reconciliation import selectors
from reconciliation.models import AdminProvider
from reconciliation.services.key_links import MAX_KEY_ID, provider_key_link_set
from workspaces.api_base import ErrorSerializer, WorkspaceViewSet
from workspaces.models import MANAGER_ROLES, SPEND_READER_ROLES

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class KeyLinkOut(serializers.Serializer):
    id = serializers.IntegerField(source="credential.pk")
    name = serializers.CharField(source="credential.name")
    provider = serializers.CharField(source="credential.provider")
    last4 = serializers.CharField(source="credential.last4")
    provider_key_id = serializers.CharField()


class KeyLinkIn(serializers.Serializer):
    provider_key_id = serializers.CharField(max_length=MAX_KEY_ID, allow_blank=True)


class KeyLinkViewSet(WorkspaceViewSet):
    queryset = ProviderCredential.objects.filter(provider__in=AdminProvider.values)
    default_roles = MANAGER_ROLES
    action_roles = {"list": SPEND_READER_ROLES}

    @extend_schema(responses={200: KeyLinkOut(many=True), **ERRORS})
    def list(self, request):
        return Response(KeyLinkOut(selectors.key_links(workspace=self.workspace), many=True).data)

    @extend_schema(request=KeyLinkIn, responses={200: KeyLinkOut, **ERRORS})
    def update(self, request, pk=None):
        credential = self.get_object()
        data = KeyLinkIn(data=request.data)
        data.is_valid(raise_exception=True)
        link = provider_key_link_set(
            workspace=self.workspace,
            actor=self.member,
            credential=credential,
            provider_key_id=data.validated_data["provider_key_id"],
        )
        out = {"credential": credential, "provider_key_id": link.provider_key_id if link else ""}
        return Response(KeyLinkOut(out).data)
