"""Key pages (provider keys, gateway keys); the `/v1` proxy is not routed through Django."""

from django.urls import path

from gateway import views

urlpatterns = [
    path("manage/provider-keys/", views.provider_keys, name="manage-provider-keys"),
    path(
        "manage/provider-keys/<int:pk>/rotate/",
        views.provider_key_rotate,
        name="manage-provider-key-rotate",
    ),
    path(
        "manage/provider-keys/<int:pk>/test/",
        views.provider_key_test_view,
        name="manage-provider-key-test",
    ),
    path(
        "manage/provider-keys/<int:pk>/delete/",
        views.provider_key_delete_view,
        name="manage-provider-key-delete",
    ),
    path("manage/gateway-keys/", views.gateway_keys, name="manage-gateway-keys"),
    path("manage/gateway-keys/<int:pk>/", views.gateway_key_edit, name="manage-gateway-key"),
    path(
        "manage/gateway-keys/<int:pk>/revoke/",
        views.gateway_key_revoke_view,
        name="manage-gateway-key-revoke",
    ),
]
