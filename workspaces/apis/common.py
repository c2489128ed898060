"""What every workspace API module shares: the error responses and the id field."""

from __future__ import annotations

from rest_framework import serializers

from workspaces.api_base import ErrorSerializer

ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def id_field(**kwargs) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=2**63 - 1, **kwargs)
