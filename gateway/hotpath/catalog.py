"""`GET /v1/models`: the models the workspace's credentials serve, with the prices it pays,
narrowed to the key's allow-lists."""

from __future__ import annotations

from typing import Any

import orjson
from genai_prices import data_snapshot

from core.limits import model_in_allowlists
from core.pricing import CATALOG_PROVIDER, resolve_price
from gateway.hotpath.auth import authenticate, workspace_of
from gateway.hotpath.call import Call
from gateway.hotpath.http import header_list, send_bytes
from gateway.hotpath.runtime import Runtime


async def list_models(rt: Runtime, call: Call, scope: dict, send: Any) -> None:
    key = await authenticate(rt.snapshots, dict(scope["headers"]), secret=rt.config.key_hash_secret)
    workspace = await workspace_of(rt.snapshots, key)
    data = workspace.get("_alephant_models")
    if data is None:
        data = workspace["_alephant_models"] = model_list(workspace)
    # Every allow-list on the key (its own and its member's, core/limits.py) must admit a model.
    allowlists = key.get("model_allowlists")
    if allowlists is None:
        allowlists = [key.get("allowed_models") or ()]
    if any(allowlists):
        data = [
            m
            for m in data
            if model_in_allowlists(allowlists, (m["id"], m["alephant"]["provider"] + "/" + m["id"]))
        ]
    body = orjson.dumps({"object": "list", "data": data})
    await send_bytes(send, 200, body, header_list({"alephant-request-id": call.request_id}))


def _catalog_models() -> dict[str, Any]:
    try:
        snapshot = data_snapshot.get_snapshot()
        return {p.id: p for p in snapshot.providers}
    except Exception:  # the listing is a convenience; never fail the route on it
        return {}


def model_list(workspace: dict[str, Any]) -> list[dict[str, Any]]:
    """Models the workspace's credentials serve, with the prices this workspace pays."""
    seen: set[tuple[str, str]] = set()
    out: list[dict[str, Any]] = []
    overrides = workspace.get("price_overrides") or []
    providers: list[str] = []
    for cred in workspace.get("credentials") or ():
        if cred.get("provider") not in providers:
            providers.append(cred.get("provider"))

    def add(provider: str, model: str) -> None:
        if (provider, model) in seen:
            return
        try:
            pricing = resolve_price(provider, model, overrides)
        except LookupError:
            return
        seen.add((provider, model))
        out.append(
            {
                "id": model,
                "object": "model",
                "created": 0,
                "owned_by": provider,
                "alephant": {"provider": provider, "pricing": pricing.public()},
            }
        )

    for row in overrides:
        if row.get("provider") in providers:
            add(row["provider"], row["model"])
    by_id = _catalog_models()
    for provider in providers:
        catalog = by_id.get(CATALOG_PROVIDER.get(provider) or "")
        for info in getattr(catalog, "models", ()) or ():
            add(provider, info.id)
    return out
