from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # why: models load only once the app registry is ready; importing `tasks` registers the
        # Celery tasks, and data-key rotation (gateway) must re-seal our admin keys.
        from gateway.services.datakeys import DATAKEY_RESEALERS
        from reconciliation import tasks  # noqa: F401
        from reconciliation.services.credentials import admin_credentials_reseal

        if admin_credentials_reseal not in DATAKEY_RESEALERS:
            DATAKEY_RESEALERS.append(admin_credentials_reseal)
