import os

from celery import Celery

from alephant.env import load_dotenv

load_dotenv()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alephant.settings.dev")

app = Celery("alephant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
