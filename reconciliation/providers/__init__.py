"""Clients for the providers' admin (billing) APIs: one module per provider, one shape out."""

from __future__ import annotations

from reconciliation.providers import anthropic, openai
from reconciliation.providers.base import AdminAPIError, Line, Report

FETCHERS = {"openai": openai.fetch_report, "anthropic": anthropic.fetch_report}

__all__ = ["FETCHERS", "AdminAPIError", "Line", "Report"]
