from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # why: importing the tasks module registers its Celery tasks; models load only now.
        from reconciliation import tasks  # noqa: F401
