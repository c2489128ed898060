from django.urls import path

from attribution import apis

spend_view = apis.SpendViewSet.as_view({"get": "list"})

urlpatterns = [
    path("spend", spend_view, name="api-spend"),
    path("spend/", spend_view),
]
