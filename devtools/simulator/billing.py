"""The providers' admin (billing) APIs, answered from the simulator's own tally of the calls it
served, so reconciliation runs over real HTTP against figures nobody typed in.

Every model call the simulator answers (through Alephant or not) is billed here to the key that
made it, at the catalog price (`core.pricing`), on its UTC day. Calls made *around* the gateway
with the same provider key therefore show up on the bill and not in the ledger: uncaptured spend.

Endpoints (shapes as the providers document them, paging by `has_more` / `next_page`):
* OpenAI: `GET /v1/organization/costs`, `GET /v1/organization/usage/completions`
  (`Authorization: Bearer sk-admin-...`).
* Anthropic: `GET /v1/organizations/cost_report`, `GET /v1/organizations/usage_report/messages`
  (`x-api-key: sk-ant-admin...`, `anthropic-version`).
Knobs (`POST /_sim/billing/knobs`, JSON): `drift_pct` (costs scaled by 1 + pct/100),
`missing_days` (ISO days left out), `hold` (new calls are billed late: hidden until
`POST /_sim/billing/release`), `page_size` (buckets per page). `POST /_sim/billing/usage` adds
a call on any day (spend made elsewhere, or in the past).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections import defaultdict
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from core.pricing import MTOK, UnpricedModel, resolve_price
from devtools.simulator.core import SIM, Sim

routes = web.RouteTableDef()
ZERO = Decimal(0)
COMPONENTS = ("input", "cached", "output")


def key_id(provider: str, secret: str) -> str:
    digest = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return ("key_" if provider == "openai" else "apikey_") + digest


def _secret(request: web.Request) -> str:
    auth = request.headers.get("authorization") or ""
    return auth.removeprefix("Bearer ").strip() or request.headers.get("x-api-key", "")


def _costs(provider: str, model: str, total_in: int, cached: int, output: int) -> dict:
    try:
        price = resolve_price(provider, model)
    except UnpricedModel:
        return dict.fromkeys(COMPONENTS, ZERO)
    cached = min(cached, total_in)
    return {
        "input": (total_in - cached) * price.input.at(total_in) / MTOK,
        "cached": cached * (price.cache_read or price.input).at(total_in) / MTOK,
        "output": output * price.output.at(total_in) / MTOK + price.per_request,
    }


def bill(
    sim: Sim, *, provider: str, secret: str, model: str, input_tokens: int, cached: int,
    output: int, day: dt.date | None = None,
) -> None:  # fmt: skip
    """Tally one served call. `input_tokens` includes cached tokens (both providers' totals)."""
    sim.billed.append(
        {
            "provider": provider,
            "day": day or dt.datetime.now(dt.UTC).date(),
            "model": model,
            "key_id": key_id(provider, secret),
            "input": input_tokens,
            "cached": cached,
            "output": output,
            "cost": _costs(provider, model, input_tokens, cached, output),
            "visible": not sim.billing_knobs.get("hold"),
        }
    )


def bill_request(sim: Sim, request: web.Request, *, provider: str, model: str, usage: dict) -> None:
    if provider == "openai":
        details = usage.get("prompt_tokens_details") or {}
        total_in, cached = usage.get("prompt_tokens", 0), details.get("cached_tokens", 0)
        output = usage.get("completion_tokens", 0)
    else:  # Anthropic's input_tokens excludes cache reads and writes
        cached = usage.get("cache_read_input_tokens", 0)
        total_in = (
            usage.get("input_tokens", 0) + cached + usage.get("cache_creation_input_tokens", 0)
        )
        output = usage.get("output_tokens", 0)
    bill(sim, provider=provider, secret=_secret(request), model=model,
         input_tokens=total_in, cached=cached, output=output)  # fmt: skip


# --- the window, buckets and paging -----------------------------------------------------------


def _days(start: dt.date, end: dt.date, page: str | None) -> list[dt.date]:
    first = dt.date.fromisoformat(base64.urlsafe_b64decode(page).decode()) if page else start
    return [first + dt.timedelta(days=i) for i in range((end - first).days)]


def _page(sim: Sim, days: list[dt.date], limit: int) -> tuple[list[dt.date], str | None]:
    size = min(limit, int(sim.billing_knobs.get("page_size") or limit))
    shown, rest = days[:size], days[size:]
    token = base64.urlsafe_b64encode(rest[0].isoformat().encode()).decode() if rest else None
    return shown, token


def _entries(sim: Sim, provider: str, day: dt.date) -> list[dict]:
    missing = set(sim.billing_knobs.get("missing_days") or [])
    if day.isoformat() in missing:
        return []
    return [e for e in sim.billed if e["provider"] == provider and e["day"] == day and e["visible"]]


def _drift(sim: Sim) -> Decimal:
    return 1 + Decimal(str(sim.billing_knobs.get("drift_pct") or 0)) / 100


def _group(entries: list[dict], fields: list[str]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for entry in entries:
        groups[tuple(entry.get(f) for f in fields)].append(entry)
    return groups


def _json(body: dict) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _list_param(request: web.Request, name: str) -> list[str]:
    return request.query.getall(name, []) + request.query.getall(f"{name}[]", [])


def _missing(sim: Sim) -> set[str]:
    return set(sim.billing_knobs.get("missing_days") or [])


def _admin_refusal(request: web.Request, provider: str) -> web.Response | None:
    secret = _secret(request)
    request.app[SIM].admin_auths.append(secret)
    if provider == "openai" and not secret.startswith("sk-admin-"):
        error = {"message": "Admin key required", "type": "invalid_request_error"}
        return web.json_response({"error": error}, status=401)
    if provider == "anthropic":
        if not secret.startswith("sk-ant-admin"):
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return web.json_response({"type": "error", "error": error}, status=401)
        if not request.headers.get("anthropic-version"):
            error = {"type": "invalid_request_error", "message": "anthropic-version required"}
            return web.json_response({"type": "error", "error": error}, status=400)
    return None


# --- OpenAI -----------------------------------------------------------------------------------


def _oai_window(request: web.Request) -> tuple[dt.date, dt.date]:
    start = dt.datetime.fromtimestamp(int(request.query["start_time"]), tz=dt.UTC).date()
    end_raw = request.query.get("end_time")
    end = (
        dt.datetime.fromtimestamp(int(end_raw), tz=dt.UTC).date()
        if end_raw
        else dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    )
    return start, end


def _epoch(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())


async def _oai_report(request: web.Request, results_for, default_limit: int) -> web.Response:
    sim = request.app[SIM]
    refused = _admin_refusal(request, "openai")
    if refused is not None:
        return refused
    start, end = _oai_window(request)
    days, token = _page(
        sim, _days(start, end, request.query.get("page")),
        int(request.query.get("limit", default_limit)),
    )  # fmt: skip
    data = [
        {
            "object": "bucket",
            "start_time": _epoch(day),
            "end_time": _epoch(day + dt.timedelta(days=1)),
            "results": results_for(sim, day, _list_param(request, "group_by")),
        }
        for day in days
        if day.isoformat() not in _missing(sim)
    ]
    return _json(
        {"object": "page", "data": data, "has_more": token is not None, "next_page": token}
    )


def _oai_cost_results(sim: Sim, day: dt.date, group_by: list[str]) -> list[dict]:
    rows: dict[tuple, Decimal] = defaultdict(Decimal)
    for entry in _entries(sim, "openai", day):
        for part, label in (("input", "input"), ("cached", "cached input"), ("output", "output")):
            if entry["cost"][part]:
                line_item = f"{entry['model']}, {label}" if "line_item" in group_by else None
                project = "proj_sim" if "project_id" in group_by else None
                rows[(line_item, project)] += entry["cost"][part] * _drift(sim)
    return [
        {
            "object": "organization.costs.result",
            # The exact decimal as a JSON number (a float would round it).
            "amount": {"value": orjson.Fragment(f"{amount:f}".encode()), "currency": "usd"},
            "line_item": line_item,
            "project_id": project,
        }
        for (line_item, project), amount in sorted(rows.items(), key=lambda kv: str(kv[0]))
    ]


def _oai_usage_results(sim: Sim, day: dt.date, group_by: list[str]) -> list[dict]:
    fields = [f for f, param in (("model", "model"), ("key_id", "api_key_id")) if param in group_by]
    results = []
    for key, entries in sorted(_group(_entries(sim, "openai", day), fields).items()):
        named = dict(zip(fields, key, strict=True))
        results.append(
            {
                "object": "organization.usage.completions.result",
                "input_tokens": sum(e["input"] for e in entries),
                "output_tokens": sum(e["output"] for e in entries),
                "input_cached_tokens": sum(e["cached"] for e in entries),
                "input_audio_tokens": 0,
                "output_audio_tokens": 0,
                "num_model_requests": len(entries),
                "project_id": "proj_sim" if "project_id" in group_by else None,
                "user_id": None,
                "api_key_id": named.get("key_id"),
                "model": named.get("model"),
                "batch": None,
            }
        )
    return results


@routes.get("/v1/organization/costs")
async def openai_costs(request: web.Request) -> web.Response:
    return await _oai_report(request, _oai_cost_results, 7)


@routes.get("/v1/organization/usage/completions")
async def openai_usage(request: web.Request) -> web.Response:
    return await _oai_report(request, _oai_usage_results, 7)


# --- Anthropic --------------------------------------------------------------------------------

TOKEN_TYPES = {
    "input": ("uncached_input_tokens", "Input Tokens"),
    "cached": ("cache_read_input_tokens", "Cache Read Input Tokens"),
    "output": ("output_tokens", "Output Tokens"),
}


def _rfc3339(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _ant_day(text: str) -> dt.date:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC).date()


def _ant_cost_results(sim: Sim, day: dt.date, group_by: list[str]) -> list[dict]:
    rows: dict[tuple, Decimal] = defaultdict(Decimal)
    by_description = "description" in group_by
    for entry in _entries(sim, "anthropic", day):
        for part, cost in entry["cost"].items():
            if cost:
                rows[(entry["model"], part) if by_description else (None, None)] += cost * _drift(
                    sim
                )
    results = []
    for (model, part), amount in sorted(rows.items(), key=lambda kv: str(kv[0])):
        token_type, label = TOKEN_TYPES.get(part, (None, None))
        results.append(
            {
                "currency": "USD",
                "amount": f"{amount * 100:f}",  # cents, as a decimal string
                "workspace_id": None,
                "description": f"{model} Usage - {label}" if model else None,
                "cost_type": "tokens" if model else None,
                "context_window": "0-200k" if model else None,
                "model": model,
                "service_tier": "standard" if model else None,
                "token_type": token_type,
            }
        )
    return results


def _ant_usage_results(sim: Sim, day: dt.date, group_by: list[str]) -> list[dict]:
    fields = [f for f, param in (("model", "model"), ("key_id", "api_key_id")) if param in group_by]
    results = []
    for key, entries in sorted(_group(_entries(sim, "anthropic", day), fields).items()):
        named = dict(zip(fields, key, strict=True))
        cached = sum(e["cached"] for e in entries)
        results.append(
            {
                "uncached_input_tokens": sum(e["input"] for e in entries) - cached,
                "cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                "cache_read_input_tokens": cached,
                "output_tokens": sum(e["output"] for e in entries),
                "server_tool_use": {"web_search_requests": 0},
                "api_key_id": named.get("key_id"),
                "workspace_id": None,
                "model": named.get("model"),
                "service_tier": None,
                "context_window": None,
            }
        )
    return results


async def _ant_report(request: web.Request, results_for) -> web.Response:
    sim = request.app[SIM]
    refused = _admin_refusal(request, "anthropic")
    if refused is not None:
        return refused
    start = _ant_day(request.query["starting_at"])
    end_raw = request.query.get("ending_at")
    end = _ant_day(end_raw) if end_raw else dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    days, token = _page(
        sim, _days(start, end, request.query.get("page")), int(request.query.get("limit", 7))
    )
    data = [
        {
            "starting_at": _rfc3339(day),
            "ending_at": _rfc3339(day + dt.timedelta(days=1)),
            "results": results_for(sim, day, _list_param(request, "group_by")),
        }
        for day in days
        if day.isoformat() not in _missing(sim)
    ]
    return _json({"data": data, "has_more": token is not None, "next_page": token})


@routes.get("/v1/organizations/cost_report")
async def anthropic_costs(request: web.Request) -> web.Response:
    return await _ant_report(request, _ant_cost_results)


@routes.get("/v1/organizations/usage_report/messages")
async def anthropic_usage(request: web.Request) -> web.Response:
    return await _ant_report(request, _ant_usage_results)


# --- knobs ------------------------------------------------------------------------------------


@routes.post("/_sim/billing/knobs")
async def knobs(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    sim.billing_knobs.update(orjson.loads(await request.read()))
    return _json({"ok": True, "knobs": sim.billing_knobs})


@routes.post("/_sim/billing/release")
async def release(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    sim.billing_knobs["hold"] = False
    for entry in sim.billed:
        entry["visible"] = True
    return _json({"ok": True})


@routes.post("/_sim/billing/usage")
async def add_usage(request: web.Request) -> web.Response:
    """A call billed without being served here: `{provider, secret, model, day, input_tokens,
    cached_tokens, output_tokens}` (spend made elsewhere with the same key)."""
    sim = request.app[SIM]
    body: dict[str, Any] = orjson.loads(await request.read())
    bill(
        sim, provider=body["provider"], secret=body["secret"], model=body["model"],
        input_tokens=int(body.get("input_tokens", 0)), cached=int(body.get("cached_tokens", 0)),
        output=int(body.get("output_tokens", 0)),
        day=dt.date.fromisoformat(body["day"]) if body.get("day") else None,
    )  # fmt: skip
    return _json({"ok": True, "billed": len(sim.billed)})


@routes.get("/_sim/billing/keys")
async def keys(request: web.Request) -> web.Response:
    """The provider's key id for a secret (`?provider=&secret=`), as its admin API names it."""
    return _json({"key_id": key_id(request.query["provider"], request.query["secret"])})
