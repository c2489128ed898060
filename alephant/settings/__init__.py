"""Settings per environment (cookiecutter-django's layout): `base` holds everything shared,
`dev` (the default of manage.py, ASGI, WSGI and Celery), `test` (pytest) and `prod` override it."""
