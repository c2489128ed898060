"""One scoped base for every workspace API (PostHog `TeamAndOrgViewSetMixin` style).

`WorkspaceViewSet` resolves the workspace and the acting member **once**, before DRF's dispatch:

* API token (`Authorization: Bearer alpt_...`) -> the token's workspace and member;
* session (browser, CSRF-checked by DRF) -> the workspace chosen in the session
  (`workspaces.middleware.SESSION_KEY`), else the user's first membership.

The whole dispatch (authentication, permissions, queryset, serializers, services) then runs inside
`workspace_scope(workspace_id)`: one transaction with RLS set, rolled back if the response is an
error. Subclasses set `queryset` and may narrow it with `narrow_queryset()`; they never override
`get_queryset` (enforced in `__init_subclass__`). Roles per action come from `action_roles`.
Missing and foreign ids are the same 404 (RLS hides foreign rows; the base also filters by
`workspace_id` explicitly).

Errors always have the shape
`{"error": {"type": "<code>", "message": "<text>", "fields": {"<field>": ["<text>", ...]}}}`
(`fields` only for validation errors).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, QuerySet
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions, permissions, serializers, viewsets
from rest_framework.filters import BaseFilterBackend
from rest_framework.metadata import SimpleMetadata
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.views import exception_handler as drf_exception_handler

from workspaces import system
from workspaces.authentication import token_from_header
from workspaces.middleware import SESSION_KEY
from workspaces.models import (
    MANAGER_ROLES,
    TOKEN_SCOPE_RANK,
    APIToken,
    Member,
    Role,
    TokenScope,
    Workspace,
)
from workspaces.services.throttle import RateLimited
from workspaces.services.tokens import api_token_lookup
from workspaces.tenancy import current_workspace_id_or_none, workspace_scope

ALL_ROLES = frozenset(Role.values)


# --- errors ---------------------------------------------------------------------------------


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_flatten(v) for v in detail]
    return str(detail)


def api_exception_handler(exc: Exception, context: dict) -> Any:
    """DRF's handler plus Django's ValidationError/PermissionDenied/ProtectedError, reshaped."""
    if isinstance(exc, RateLimited):  # 429 + Retry-After (DRF sets the header from `wait`)
        exc = exceptions.Throttled(wait=exc.retry_after, detail=exc.detail)
    elif isinstance(exc, DjangoValidationError):
        detail: Any = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, ProtectedError):
        exc = exceptions.ValidationError(
            {"non_field_errors": ["This object is still in use; remove what depends on it first."]}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = _flatten(detail if isinstance(detail, dict) else {"non_field_errors": detail})
        body: dict[str, Any] = {
            "type": "validation_error",
            "message": "Invalid input.",
            "fields": fields,
        }
    else:
        detail = getattr(exc, "detail", "")
        code = getattr(exc, "default_code", "error")
        body = {"type": code, "message": str(_flatten(detail))}
    response.data = {"error": body}
    return response


class ErrorBodySerializer(serializers.Serializer):
    type = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(), required=False
    )


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


# --- pagination and filters -----------------------------------------------------------------


class Pagination(LimitOffsetPagination):
    """`{count, next, previous, results}`; `?limit=` (default 50, max 200) and `?offset=`."""

    default_limit = 50
    max_limit = 200


class FieldFilterBackend(BaseFilterBackend):
    """Exact-match filters declared on the view: `filter_fields = {"role": ("role", str)}`.

    A value of the wrong type is a 400, not a 500.
    """

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        for param, (lookup, kind) in getattr(view, "filter_fields", {}).items():
            raw = request.query_params.get(param)
            if raw is None or raw == "":
                continue
            try:
                value: Any = _coerce(raw, kind)
            except ValueError:
                raise exceptions.ValidationError({param: ["Invalid value."]}) from None
            queryset = queryset.filter(**{lookup: value})
        return queryset

    def get_schema_operation_parameters(self, view):
        types = {int: "integer", bool: "boolean", str: "string"}
        return [
            {
                "name": param,
                "required": False,
                "in": "query",
                "schema": {"type": types.get(kind, "string")},
                "description": f"Exact match on {param}.",
            }
            for param, (_, kind) in getattr(view, "filter_fields", {}).items()
        ]


def _coerce(raw: str, kind: type) -> Any:
    if kind is int:
        value = int(raw)
        if not -(2**63) < value < 2**63:
            raise ValueError(raw)
        return value
    if kind is bool:
        lowered = raw.lower()
        if lowered in {"true", "1"}:
            return True
        if lowered in {"false", "0"}:
            return False
        raise ValueError(raw)
    if "\x00" in raw:
        raise ValueError(raw)
    return raw[:200]


class MinimalMetadata(SimpleMetadata):
    """OPTIONS answers name/description/renders/parses; the OpenAPI schema has the rest
    (DRF's default would need one `serializer_class` per view; ours has one per operation)."""

    def determine_metadata(self, request, view):
        return {
            "name": view.get_view_name(),
            "description": view.get_view_description(),
            "renders": [r.media_type for r in view.renderer_classes],
            "parses": [p.media_type for p in view.parser_classes],
        }


# --- permissions ----------------------------------------------------------------------------


class WorkspaceRolePermission(permissions.BasePermission):
    """The request has a member in the resolved workspace whose role the action allows."""

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        member = view.resolve_member(request)
        if member is None:
            return False
        if member.role not in view.roles_for_action():
            return False
        token = request.auth
        if isinstance(token, APIToken):  # a browser session acts with the member's full role
            needed = (
                TokenScope.READ if request.method in permissions.SAFE_METHODS else view.write_scope
            )
            if TOKEN_SCOPE_RANK[TokenScope(token.scope)] < TOKEN_SCOPE_RANK[needed]:
                self.message = (
                    f"This token's scope ({token.scope}) does not allow this; {needed} does."
                )
                return False
        return True


class _RollbackWith(Exception):
    def __init__(self, response: Any) -> None:
        super().__init__()
        self.response = response


# --- the base -------------------------------------------------------------------------------


class WorkspaceViewSet(viewsets.GenericViewSet):
    """Base for every `/api/v1/` workspace endpoint. See the module docstring."""

    permission_classes = [permissions.IsAuthenticated, WorkspaceRolePermission]
    pagination_class = Pagination
    metadata_class = MinimalMetadata
    filter_backends = [FieldFilterBackend]
    filter_fields: ClassVar[dict[str, tuple[str, type]]] = {}
    # action name -> roles allowed; actions not listed get `default_roles`.
    action_roles: ClassVar[dict[str, frozenset[str]]] = {}
    default_roles: ClassVar[frozenset[str]] = MANAGER_ROLES
    # The token scope a change needs here (reads need `read`); who-is-in and tokens need admin.
    write_scope: ClassVar[str] = TokenScope.WRITE
    lookup_value_regex = r"[0-9]+"

    workspace: Workspace
    member: Member

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset: narrow with narrow_queryset() instead "
                "(the workspace scoping lives in WorkspaceViewSet.get_queryset)."
            )

    # --- scope ------------------------------------------------------------------------------

    def _resolve_workspace_id(self, request) -> int | None:
        """On the plain Django request, before DRF: which workspace this call runs in."""
        raw = token_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        if raw is not None:
            match = api_token_lookup(raw)
            request.alephant_token_match = match  # reused by APITokenAuthentication
            return match.workspace_id if match else None
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        memberships = system.user_memberships(user.pk)
        if not memberships:
            return None
        wanted = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
        chosen = next((m for m in memberships if m.workspace_id == wanted), memberships[0])
        return chosen.workspace_id

    def dispatch(self, request, *args, **kwargs):
        workspace_id = self._resolve_workspace_id(request)
        if workspace_id is None:
            # No workspace: authentication/permissions below answer 401/403; no tenant data.
            return super().dispatch(request, *args, **kwargs)
        try:
            with workspace_scope(workspace_id):
                response = super().dispatch(request, *args, **kwargs)
                if response.status_code >= 400:
                    # An error answer leaves nothing half-written: leave the scope by raising,
                    # which rolls back its transaction/savepoint.
                    raise _RollbackWith(response)
                return response
        except _RollbackWith as rollback:
            return rollback.response

    def resolve_member(self, request) -> Member | None:
        if getattr(self, "member", None) is not None:
            return self.member
        workspace_id = current_workspace_id_or_none()
        if workspace_id is None or not request.user.is_authenticated:
            return None
        member: Member | None
        if isinstance(request.auth, APIToken):
            member = request.auth.member
            if member.workspace_id != workspace_id:
                return None
        else:
            member = (
                Member.objects.select_related("workspace", "user", "department")
                .filter(workspace_id=workspace_id, user=request.user)
                .first()
            )
        if member is None:
            return None
        self.member = member
        self.workspace = member.workspace
        return member

    def roles_for_action(self) -> frozenset[str]:
        return self.action_roles.get(self.action or "", self.default_roles)

    # --- querysets --------------------------------------------------------------------------

    def get_queryset(self) -> QuerySet:
        base: Any = getattr(self, "queryset", None)
        assert base is not None, f"{type(self).__name__} needs a queryset"
        qs = base.all().filter(workspace_id=self.workspace.pk)
        return self.narrow_queryset(qs)

    def narrow_queryset(self, queryset: QuerySet) -> QuerySet:
        """Hook: narrow (never widen) what this member may see, e.g. only their own rows."""
        return queryset

    def get_exception_handler(self):
        return api_exception_handler

    def get_serializer_context(self) -> dict:
        context = dict(super().get_serializer_context())
        context["workspace"] = getattr(self, "workspace", None)
        context["member"] = getattr(self, "member", None)
        return context

    def paginated(self, queryset: QuerySet, serializer_class: type[serializers.Serializer]):
        page = self.paginate_queryset(self.filter_queryset(queryset))
        data = serializer_class(page, many=True, context=self.get_serializer_context()).data
        return self.get_paginated_response(data)


def id_in_workspace(model: Any, value: Any, *, workspace: Workspace, field: str) -> Any:
    """Resolve a user-supplied id to a row of this workspace, or a 400 field error (same text
    for missing and foreign ids)."""
    if value is None:
        return None
    obj = model._default_manager.filter(workspace_id=workspace.pk, pk=value).first()
    if obj is None:
        raise exceptions.ValidationError({field: ["Not found."]})
    return obj


LIMIT_OFFSET_PARAMETERS = [
    OpenApiParameter("limit", int, description="Page size (max 200)."),
    OpenApiParameter("offset", int, description="Items to skip."),
]


class APITokenScheme(OpenApiAuthenticationExtension):
    target_class = "workspaces.authentication.APITokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (`alpt_...`) from /api/v1/api-tokens/ or "
            "`manage.py create_workspace`.",
        }
