"""Spend pages. Included before `workspaces.urls`, so `""` (the home page) is the overview."""

from django.urls import path

from attribution import views

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
    path("alerts/<int:pk>/acknowledge/", views.alert_ack, name="alert-ack"),
    path("budgets/", views.budgets_page, name="budgets"),
    path("budgets/mine/", views.my_budgets, name="my-budgets"),
    path("budgets/<int:pk>/", views.budget_detail, name="budget-detail"),
    path("requests/", views.request_log, name="request-log"),
    # The index of the admin pages; the pages themselves live with their models
    # (`gateway.urls`: keys, `billing.urls`: budgets and channels).
    path("manage/", views.manage_index, name="manage"),
]
