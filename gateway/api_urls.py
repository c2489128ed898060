from rest_framework.routers import SimpleRouter

from gateway import apis

router = SimpleRouter()
router.register("provider-keys", apis.ProviderKeyViewSet, basename="api-provider-keys")
router.register("gateway-keys", apis.GatewayKeyViewSet, basename="api-gateway-keys")

urlpatterns = router.urls
