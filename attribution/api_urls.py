from django.urls import re_path

from attribution import apis

urlpatterns = [
    re_path(r"^spend/?$", apis.SpendViewSet.as_view({"get": "list"}), name="api-spend"),
]
