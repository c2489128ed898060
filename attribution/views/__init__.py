"""Spend pages, one module per area; `attribution.urls` reads them from here."""

from attribution.views.alerts import alert_ack, alerts_feed
from attribution.views.budgets import budget_detail, budgets_page, my_budgets
from attribution.views.entities import (
    agent_detail,
    department_detail,
    key_detail,
    member_detail,
    model_detail,
    property_detail,
    provider_detail,
)
from attribution.views.manage import manage_index
from attribution.views.requests import request_log
from attribution.views.sessions import session_detail, sessions_list
from attribution.views.spend import overview, spend_list

__all__ = [
    "agent_detail",
    "alert_ack",
    "alerts_feed",
    "budget_detail",
    "budgets_page",
    "department_detail",
    "key_detail",
    "manage_index",
    "member_detail",
    "model_detail",
    "my_budgets",
    "overview",
    "property_detail",
    "provider_detail",
    "request_log",
    "session_detail",
    "sessions_list",
    "spend_list",
]
