"""/healthz and /readyz against the real Postgres, Redis and Celery broker."""

from __future__ import annotations

import socket


def _closed_port() -> int:
    # Ask the OS for a free port, then close it: nothing listens there.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_without_touching_services(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_everything_answers(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"postgres": "ok", "redis": "ok", "celery_broker": "ok"}


def test_readyz_names_redis_and_the_broker_when_redis_is_down(client, db, settings):
    dead = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.REDIS_URL = dead
    settings.CELERY_BROKER_URL = dead
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["redis", "celery_broker"]
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"].startswith("unavailable")


def test_readyz_names_only_the_broker_when_only_the_broker_is_down(client, db, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["celery_broker"]
