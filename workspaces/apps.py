from django.apps import AppConfig
from django.db.models.signals import post_migrate

from workspaces.system import grant_app_role


class WorkspacesConfig(AppConfig):
    name = "workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Infrastructure, not business logic: after every migrate (run as the owner role) the
        # app role gets DML (never TRUNCATE) on every table and sequence, including Django's own.
        post_migrate.connect(grant_app_role, sender=self)
