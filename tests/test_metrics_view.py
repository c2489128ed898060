"""The Django app's own `/metrics` (when it runs without the gateway in front): the Redis
gauges in the Prometheus text format, behind the same bearer token."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from alephant import metrics
from gateway.hotpath.config import Config

pytestmark = pytest.mark.django_db


def test_metrics_open_without_a_token(redis_client):
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(response.content.decode())}
    assert {"alephant_usage_queue_length", "alephant_ledger_lag_events"} <= names


def test_metrics_want_the_token_when_set(monkeypatch, redis_client):
    monkeypatch.setattr(metrics, "_config", Config("k", metrics_token="s3cret"))
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret")
    assert ok.status_code == 200
