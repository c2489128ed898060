"""`/healthz`: the process answers. `/readyz`: Postgres, Redis and the Celery broker answer."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from alephant.celery import app
from core.redisclients import sync_client


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_postgres() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = sync_client(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def _check_broker() -> None:
    # The URL is read from settings at check time (not from the app's config, cached at first
    # use), so the probe reports on the broker that is configured now.
    with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=1)


def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"postgres": _check_postgres, "redis": _check_redis, "celery_broker": _check_broker}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # a readiness probe reports, it does not raise
            results[name] = f"unavailable: {type(exc).__name__}"
    failing = [name for name, result in results.items() if result != "ok"]
    body: dict[str, object] = {"status": "ok" if not failing else "unavailable", "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
