from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "gateway"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A missing or wrong master key must stop the process at start-up, not at the first
        # request that needs a provider secret.
        from gateway.services.vault_check import check_master_key

        check_master_key()
        # why: receivers import models, which may load only once the app registry is ready.
        from gateway import receivers

        receivers.connect()
