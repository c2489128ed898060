"""Which credential serves a model, whether the key may use it, and who the call is for.

Model references: `<credential name or provider id>/<model>` picks that credential; a bare name
goes to the first credential (in creation order) whose provider has a price for it (the
workspace's override, else the catalog). Results are memoised on the snapshot object, which
is replaced (and so forgotten) at most once a second.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from core.limits import model_in_allowlists
from core.modelnames import model_name_problem
from core.pricing import ModelPricing, UnpricedModel, catalog_price, find_override, resolve_price
from gateway.hotpath.http import GatewayError
from gateway.hotpath.providers import PROVIDERS

_ROUTES = "_alephant_routes"
MAX_PROPERTIES = 20


@dataclass(frozen=True)
class Route:
    credential: dict[str, Any]
    provider: str
    model: str  # the provider's model name
    pricing: ModelPricing


def _credentials(workspace: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in workspace.get("credentials") or () if c.get("provider") in PROVIDERS]


def _find(workspace: dict[str, Any], ref: str) -> tuple[dict[str, Any], str] | None:
    credentials = _credentials(workspace)
    overrides = workspace.get("price_overrides")
    if "/" in ref:
        prefix, rest = ref.split("/", 1)
        for cred in credentials:
            if cred.get("name") == prefix:
                return cred, rest
        for cred in credentials:
            if cred.get("provider") == prefix:
                return cred, rest
    for cred in credentials:
        provider = cred["provider"]
        if find_override(provider, ref, overrides) is not None or catalog_price(provider, ref):
            return cred, ref
    # Self-hosted families have no catalog: a lone such credential takes unknown names, and
    # pricing then refuses them unless the workspace priced the model.
    selfhosted = [
        c for c in credentials if c["provider"] in ("ollama", "vllm", "openai-compatible")
    ]
    if len(selfhosted) == 1:
        return selfhosted[0], ref
    return None


def _invalid_model(ref: object, problem: str) -> GatewayError:
    shown = ref[:200] if isinstance(ref, str) else ref
    return GatewayError(
        400,
        f"Invalid model name {shown!r}: {problem}.",
        error_type="invalid_request_error",
        code="invalid_model",
        param="model",
    )


def resolve_route(workspace: dict[str, Any], ref: str) -> Route:
    """The route for `ref`; 400 for a name outside the grammar (core/modelnames.py).

    Checked before anything else so an invalid name is never admitted, priced or forwarded,
    and the model sent upstream (`Route.model`) is always a valid name.
    """
    cache = workspace.get(_ROUTES)
    if cache is None:
        cache = workspace[_ROUTES] = {}
    route = cache.get(ref)
    if route is not None:
        return route
    problem = model_name_problem(ref)
    if problem is not None:
        raise _invalid_model(ref, problem)
    found = _find(workspace, ref)
    if found is None:
        raise GatewayError(
            404,
            f"The model `{ref}` does not exist or no provider key in this workspace serves it.",
            error_type="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    cred, model = found
    problem = model_name_problem(model)  # the part after a `provider/` or `credential/` prefix
    if problem is not None:
        raise _invalid_model(model, problem)
    try:
        pricing = resolve_price(cred["provider"], model, workspace.get("price_overrides"))
    except UnpricedModel as exc:
        raise GatewayError(
            400,
            str(exc),
            error_type="invalid_request_error",
            code="model_not_priced",
            param="model",
        ) from None
    route = Route(cred, cred["provider"], model, pricing)
    if len(cache) < 1000:
        cache[ref] = route
    return route


def model_allowed(key: dict[str, Any], ref: str, route: Route) -> bool:
    """Whether the key's `allowed_models` globs admit the model this route calls and prices.

    Matched against `route.model`, the exact id sent upstream and priced (alone, or behind its
    provider or credential name), never against the raw `ref`: what the client wrote may differ
    from what is called only by that routing prefix.
    """
    # `model_allowlists`: the key's own list and its member's (core/limits.py); the call must
    # match every one. Older snapshots carry only `allowed_models`.
    allowlists = key.get("model_allowlists")
    if allowlists is None:
        allowlists = [key.get("allowed_models") or ()]
    names = (
        route.model,
        f"{route.provider}/{route.model}",
        f"{route.credential.get('name')}/{route.model}",
    )
    return model_in_allowlists(allowlists, names)


@dataclass
class Attribution:
    member_id: int | None
    department_id: int | None
    agent_id: int | None
    session_id: str
    session_path: str
    session_name: str
    properties: dict[str, str]
    agent_department_id: int | None = None  # charged besides `department_id`, never instead


def attribution(key: dict[str, Any], headers: dict[bytes, bytes]) -> Attribution:
    """Owner from the key; `Alephant-Agent` only names an agent the key's member owns."""
    member_id = key.get("member_id")
    department_id = key.get("department_id")  # always the member's own (gateway/snapshots.py)
    agent_department_id = key.get("agent_department_id")
    agent_id = key.get("agent_id")
    slug = headers.get(b"alephant-agent")
    if slug:
        name = slug.decode("latin-1").strip()
        owned = (key.get("member_agents") or {}).get(name)
        if agent_id is None and owned is not None:
            agent_id = owned.get("agent_id")
            # An agent in another department charges it too; it never replaces the member's.
            agent_department_id = owned.get("agent_department_id")
        elif owned is None:
            raise GatewayError(
                403,
                f"Alephant-Agent `{name}` is not an agent of this key's member.",
                error_type="permission_denied",
                code="agent_not_allowed",
            )
    properties: dict[str, str] = {}
    for raw_name, value in headers.items():
        if raw_name.startswith(b"alephant-property-") and len(properties) < MAX_PROPERTIES:
            properties[raw_name[18:].decode("latin-1")[:64]] = value.decode("latin-1")[:256]
    customer = headers.get(b"alephant-customer")
    if customer:  # the end customer (resellers): recorded, and budgeted, as property `customer`
        properties["customer"] = customer.decode("latin-1").strip()[:256]

    def text(name: bytes, limit: int) -> str:
        value = headers.get(name)
        return value.decode("utf-8", "replace")[:limit] if value else ""

    return Attribution(
        member_id=member_id,
        department_id=department_id,
        agent_id=agent_id,
        agent_department_id=agent_department_id,
        session_id=text(b"alephant-session-id", 128),
        session_path=text(b"alephant-session-path", 512),
        session_name=text(b"alephant-session-name", 256),
        properties=properties,
    )


def _norm(value: Any) -> Any:
    """Whitespace-collapsed copy of a parsed JSON value. Exact `type()` checks first: a parsed
    body holds only plain str/list/dict (cheaper than an isinstance chain on every message);
    the isinstance fallback keeps subclasses normalised the same way."""
    kind = type(value)
    if kind is str:
        return " ".join(value.split())
    if kind is dict:
        return {k: _norm(v) for k, v in value.items()}
    if kind is list:
        return [_norm(v) for v in value]
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def fingerprint(ref: str, body: dict[str, Any]) -> str:
    """sha256 of the model and the normalised conversation (keys sorted, text stripped)."""
    convo = body.get("messages")
    if convo is None:
        convo = body.get("input", body.get("prompt"))
    payload = orjson.dumps(
        {"model": ref, "messages": _norm(convo), "system": _norm(body.get("system"))},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(payload).hexdigest()
