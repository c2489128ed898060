import os

from django.core.wsgi import get_wsgi_application

from alephant.env import load_dotenv

load_dotenv()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "alephant.settings.dev")
application = get_wsgi_application()
