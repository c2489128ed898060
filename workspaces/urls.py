from django.urls import path

from workspaces import views

urlpatterns = [
    path("", views.home, name="home"),
    path("workspaces/switch/", views.workspace_switch, name="workspace_switch"),
    path("workspaces/new/", views.workspace_new, name="workspace_new"),
    path("members/", views.members, name="members"),
    path("members/invite/", views.member_invite, name="member_invite"),
    path("members/<int:member_id>/update/", views.member_update_view, name="member_update"),
    path("members/<int:member_id>/remove/", views.member_remove_view, name="member_remove"),
    path("members/<int:member_id>/limits/", views.member_limits_view, name="member_limits"),
    path(
        "members/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("invite/<str:token>/", views.invitation_accept_view, name="invitation_accept"),
    path("departments/", views.departments, name="departments"),
    path("departments/new/", views.department_new, name="department_new"),
    path("departments/<int:department_id>/", views.department_detail, name="department_detail"),
    path("agents/", views.agents, name="agents"),
    path("agents/new/", views.agent_new, name="agent_new"),
    path("agents/<int:agent_id>/", views.agent_detail, name="agent_detail"),
    path("settings/", views.settings_page, name="workspace_settings"),
    path("settings/audit/", views.audit_page, name="audit_log"),
    path("settings/api-tokens/", views.api_tokens_page, name="api_tokens"),
    path(
        "settings/api-tokens/<int:pk>/revoke/",
        views.api_token_revoke_view,
        name="api_token_revoke",
    ),
]
