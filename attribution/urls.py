"""Spend pages. Included before `workspaces.urls`, so `""` (the home page) is the overview."""

from django.urls import path

from attribution import admin_views, views

urlpatterns = [
    # Named like the placeholder it replaces, so the nav highlights it.
    path("", views.overview, name="home"),
    path("spend/members/<int:pk>/", views.member_detail, name="spend-member"),
    path("spend/agents/<int:pk>/", views.agent_detail, name="spend-agent"),
    path("spend/departments/<int:pk>/", views.department_detail, name="spend-department"),
    path("spend/keys/<int:pk>/", views.key_detail, name="spend-key"),
    path("spend/models/<path:key>/", views.model_detail, name="spend-model"),
    path("spend/providers/<str:key>/", views.provider_detail, name="spend-provider"),
    path("spend/properties/<path:key>/", views.property_detail, name="spend-property"),
    path("spend/sessions/", views.sessions_list, name="spend-sessions"),
    path("spend/sessions/<path:key>/", views.session_detail, name="spend-session"),
    path("spend/<str:segment>/", views.spend_list, name="spend-list"),
    path("alerts/", views.alerts_feed, name="alerts"),
    path("budgets/", views.budgets_page, name="budgets"),
    # Admin pages (keys, budgets, channels) over the owning apps' services.
    path("manage/", admin_views.manage_index, name="manage"),
    path("manage/provider-keys/", admin_views.provider_keys, name="manage-provider-keys"),
    path(
        "manage/provider-keys/<int:pk>/rotate/",
        admin_views.provider_key_rotate,
        name="manage-provider-key-rotate",
    ),
    path(
        "manage/provider-keys/<int:pk>/test/",
        admin_views.provider_key_test_view,
        name="manage-provider-key-test",
    ),
    path(
        "manage/provider-keys/<int:pk>/delete/",
        admin_views.provider_key_delete_view,
        name="manage-provider-key-delete",
    ),
    path("manage/gateway-keys/", admin_views.gateway_keys, name="manage-gateway-keys"),
    path("manage/gateway-keys/<int:pk>/", admin_views.gateway_key_edit, name="manage-gateway-key"),
    path(
        "manage/gateway-keys/<int:pk>/revoke/",
        admin_views.gateway_key_revoke_view,
        name="manage-gateway-key-revoke",
    ),
    path("manage/budgets/", admin_views.budgets_manage, name="manage-budgets"),
    path("manage/budgets/<int:pk>/", admin_views.budget_edit, name="manage-budget"),
    path(
        "manage/budgets/<int:pk>/delete/",
        admin_views.budget_delete_view,
        name="manage-budget-delete",
    ),
    path("manage/channels/", admin_views.channels, name="manage-channels"),
    path("manage/channels/<int:pk>/test/", admin_views.channel_test, name="manage-channel-test"),
    path(
        "manage/channels/<int:pk>/delete/", admin_views.channel_delete, name="manage-channel-delete"
    ),
]
