from django.urls import re_path
from rest_framework.routers import SimpleRouter

from workspaces import apis

router = SimpleRouter()
router.register("members", apis.MemberViewSet, basename="api-members")
router.register("invitations", apis.InvitationViewSet, basename="api-invitations")
router.register("departments", apis.DepartmentViewSet, basename="api-departments")
router.register("agents", apis.AgentViewSet, basename="api-agents")
router.register("audit-log", apis.AuditLogViewSet, basename="api-audit-log")
router.register("api-tokens", apis.APITokenViewSet, basename="api-tokens")

urlpatterns = [
    re_path(
        r"^workspace/?$",
        apis.WorkspaceSettingsViewSet.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="api-workspace",
    ),
    *router.urls,
]
