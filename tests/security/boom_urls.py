"""The app's URLs plus one page that fails: what a signed-in user sees when any page 500s."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path

OWNER_URL = "postgres://alephant_owner:owner-pw-LEAK-1234@127.0.0.1:54329/alephant"


def boom(request: HttpRequest) -> HttpResponse:
    connection_url = OWNER_URL  # a frame variable holding a credential, as library code would
    raise RuntimeError(f"could not connect to {connection_url}")


urlpatterns = [path("boom/", boom), path("", include("alephant.urls"))]
