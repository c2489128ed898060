from django.urls import path

from reconciliation import views

urlpatterns = [
    path("reconciliation/", views.month_page, name="reconciliation"),
    path("reconciliation/admin-keys/", views.admin_key_save, name="reconciliation-admin-key"),
    path(
        "reconciliation/admin-keys/<int:pk>/delete/",
        views.admin_key_delete,
        name="reconciliation-admin-key-delete",
    ),
    path(
        "reconciliation/key-links/<int:pk>/",
        views.key_link_save,
        name="reconciliation-key-link",
    ),
    path("reconciliation/pull/", views.pull_now, name="reconciliation-pull"),
    path("reconciliation/policy/", views.policy_save, name="reconciliation-policy"),
    # ?day=YYYY-MM-DD&provider=&model= (a model id may hold any character, "/" included)
    path("reconciliation/day/", views.day_page, name="reconciliation-day"),
]
