"""The priced model is the called model: name grammar, URL segments, exact prices, allow-lists.

Unit and property tests run without a server; the end-to-end tests send the attacks from the
issue through a real gateway at a counting upstream and assert nothing reached it.
"""

from __future__ import annotations

import http.server
import threading
from decimal import Decimal
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from genai_prices import Usage, calc_price, data_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from core.model_aliases import catalog_model
from core.modelnames import InvalidModelName, model_name_problem, url_segment
from core.pricing import CATALOG_PROVIDER, catalog_price, resolve_price
from gateway.hotpath.http import GatewayError
from gateway.hotpath.providers.base import Credential
from gateway.hotpath.providers.gemini import GeminiAdapter
from gateway.hotpath.providers.openai import AzureOpenAIAdapter
from gateway.hotpath.routing import model_allowed, resolve_route

ATTACKS = [
    "gemini-2.5-pro:generateContent#gemini-2.0-flash-lite",
    "../../v1/files#gemini-2.0-flash-lite",
    "gemini-2.5-pro:generateContent?alt=sse#gemini-2.0-flash-lite",
    "gemini-2.0-flash-lite/../../../admin",
    "gemini-2.0-flash-lite%2F..%2Fx",
    "gemini-2.0-flash-lite ",
    " gemini-2.0-flash-lite",
    "gemini-2.0-flash-lite\n",
    "gemini-2.0-flash-lite\x00",
    "gemini\\..\\x",
    "/gemini-2.0-flash-lite",
    "gem//gemini-2.0-flash-lite",
    "gem/./gemini-2.0-flash-lite",
    "gemini-2.0-flash-lite/",
    "gemïni-2.0-flash-lite",
    "x" * 129,
    "",
]
VALID = [
    "gpt-4o",
    "gpt-4o-2024-08-06",
    "gemini-2.5-pro",
    "llama3.1:8b",
    "claude-3-5-sonnet@20240620",
    "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    "openai/gpt-4o",
    "ft:gpt-4o-mini:acme::abc123",
    "x" * 128,
]

CRED = Credential(
    id=1,
    provider="gemini",
    name="gem",
    base_url="https://gemini.example",
    api_version=None,
    organization=None,
    timeout_s=5,
    secret="k",
)
AZURE = Credential(
    id=2,
    provider="azure-openai",
    name="az",
    base_url="https://az.example",
    api_version="2024-10-21",
    organization=None,
    timeout_s=5,
    secret="k",
)
BODY = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("name", ATTACKS)
def test_grammar_rejects_anything_that_could_change_a_url(name):
    assert model_name_problem(name) is not None
    with pytest.raises(InvalidModelName):
        url_segment(name)


@pytest.mark.parametrize("name", VALID)
def test_grammar_accepts_real_model_names(name):
    assert model_name_problem(name) is None


def test_gemini_and_azure_put_the_model_in_one_encoded_segment():
    url = GeminiAdapter().build("chat", BODY, "gemini-2.5-pro", CRED, False).url
    assert url == "https://gemini.example/v1beta/models/gemini-2.5-pro:generateContent"
    url = GeminiAdapter().build("chat", BODY, "a/b:c@1", CRED, True).url
    assert url == (
        "https://gemini.example/v1beta/models/a%2Fb%3Ac%401:streamGenerateContent?alt=sse"
    )
    url = AzureOpenAIAdapter().url("chat", "my-deploy.1", AZURE)
    assert url == (
        "https://az.example/openai/deployments/my-deploy.1/chat/completions?api-version=2024-10-21"
    )
    with pytest.raises(InvalidModelName):
        GeminiAdapter().build("chat", BODY, ATTACKS[0], CRED, False)
    with pytest.raises(InvalidModelName):
        AzureOpenAIAdapter().url("chat", "../../x?y", AZURE)


# Names near the attack surface: catalog-ish stems, URL metacharacters, dated suffixes.
_pieces = st.sampled_from(
    [
        "gemini-2.5-pro", "gemini-2.0-flash-lite", "gpt-4o", "claude-sonnet-4", "-20250514",
        "-2024-08-06", "@20240620", "-001", "-latest", ":generateContent", "#", "?", "%2F",
        "%", "/", "..", ".", " ", "\\", "\t", "\x00", "a", "Z", "9", "+", ":", "@", "_",
    ]
)  # fmt: skip
_names = st.one_of(st.text(max_size=40), st.lists(_pieces, max_size=6).map("".join))


@settings(max_examples=400, deadline=None)
@given(_names)
def test_property_rejected_or_one_segment_and_priced_as_sent(name):
    if model_name_problem(name) is not None:
        with pytest.raises(InvalidModelName):
            url_segment(name)
        assert catalog_price("gemini", name) is None
        return
    for stream in (False, True):
        url = urlsplit(GeminiAdapter().build("chat", BODY, name, CRED, stream).url)
        method = "streamGenerateContent" if stream else "generateContent"
        assert url.fragment == ""
        assert url.query == ("alt=sse" if stream else "")
        prefix, segment = url.path.rsplit("/", 1)
        assert prefix == "/v1beta/models"
        assert segment == url_segment(name) + ":" + method
        assert unquote(url_segment(name)) == name
    azure = urlsplit(AzureOpenAIAdapter().url("chat", name, AZURE))
    assert azure.path == f"/openai/deployments/{url_segment(name)}/chat/completions"
    assert azure.query == "api-version=2024-10-21" and azure.fragment == ""
    for provider in ("gemini", "openai", "anthropic"):
        pricing = catalog_price(provider, name)
        if pricing is not None:
            assert pricing.model == name
            assert _same_entry_or_alias(provider, name, pricing.extra["catalog_id"])


def _same_entry_or_alias(provider: str, name: str, catalog_id: str) -> bool:
    """`name` is the entry's id, or an alias the catalog's own matcher agrees with."""
    if name.lower() == catalog_id.lower():
        return True
    snapshot = data_snapshot.get_snapshot()
    _prov, info = snapshot.find_provider_model(name, None, CATALOG_PROVIDER[provider], None)
    return info.id == catalog_id


def _catalog_cost(provider: str, model_id: str, tokens: int) -> Decimal:
    usage = Usage(input_tokens=tokens, output_tokens=tokens)
    return calc_price(usage, model_ref=model_id, provider_id=CATALOG_PROVIDER[provider]).total_price


def test_prices_come_from_the_exact_model_sent():
    pro = resolve_price("gemini", "gemini-2.5-pro")
    assert pro.extra["catalog_id"] == "gemini-2.5-pro"
    for tokens in (1000, 300_000):  # both sides of the 200k-token price tier
        cost = pro.cost(input_tokens=tokens, output_tokens=tokens)
        assert cost == _catalog_cost("gemini", "gemini-2.5-pro", tokens)
    lite = resolve_price("gemini", "gemini-2.0-flash-lite")
    assert lite.extra["catalog_id"] == "gemini-2.0-flash-lite"
    assert pro.input.base > lite.input.base * 10
    # genai_prices alone would price these loosely; the gateway refuses them unpriced.
    for loose in ("gemini-2.5-pro-anything", "gemini-2.5-pro:generateContent", ATTACKS[0]):
        assert catalog_price("gemini", loose) is None
    assert catalog_price("openai", "gpt-4o-xyz") is None


@pytest.mark.parametrize(
    ("provider", "name", "entry"),
    [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),  # catalog's own `equals` alias
        ("openai", "gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # its own entry, not gpt-4o's
        ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-0"),
        ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest"),
        ("gemini", "gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("azure-openai", "gpt-4o", "gpt-4o"),  # Azure serves OpenAI's models by name
    ],
)
def test_dated_snapshot_prices_as_its_alias_entry(provider, name, entry):
    pricing = resolve_price(provider, name)
    assert pricing.model == name and pricing.extra["catalog_id"] == entry


def test_every_catalog_id_prices_itself():
    snapshot = data_snapshot.get_snapshot()
    for provider in ("openai", "anthropic", "gemini", "mistral", "groq", "deepseek"):
        catalog_id = CATALOG_PROVIDER[provider]
        entries = next(p for p in snapshot.providers if p.id == catalog_id).models
        for entry in entries:
            if model_name_problem(entry.id) is None:
                assert catalog_model(snapshot, catalog_id, entry.id).id == entry.id


def _workspace() -> dict:
    return {
        "credentials": [
            {"id": 1, "provider": "openai", "name": "oai"},
            {"id": 2, "provider": "gemini", "name": "gem"},
        ],
        "price_overrides": [],
    }


@pytest.mark.parametrize(
    "ref", [*ATTACKS, "gem/../../x", "gemini/gemini-2.5-pro#gemini-2.0-flash-lite", "gem/"]
)
def test_resolve_route_refuses_invalid_names_with_400_on_model(ref):
    with pytest.raises(GatewayError) as info:
        resolve_route(_workspace(), ref)
    err = info.value
    assert (err.status, err.error_type, err.param) == (400, "invalid_request_error", "model")


def test_allowed_models_glob_matches_the_exact_called_id():
    workspace = _workspace()
    key = {"allowed_models": ["gemini-2.0-flash*"]}
    lite = resolve_route(workspace, "gemini-2.0-flash-lite")
    assert lite.model == "gemini-2.0-flash-lite" and model_allowed(key, "x", lite)
    pro = resolve_route(workspace, "gemini-2.5-pro")
    assert not model_allowed(key, "gemini-2.0-flash-lite", pro)
    prefixed = resolve_route(workspace, "gem/gemini-2.0-flash-lite")
    assert prefixed.model == "gemini-2.0-flash-lite" and model_allowed(key, "x", prefixed)
    assert model_allowed({"allowed_models": ["gemini/gemini-2.0-*"]}, "x", prefixed)
    assert not model_allowed({"allowed_models": ["gemini-2.0-flash*"]}, "x", pro)


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def _any(self) -> None:
        type(self).hits.append(self.path)
        self.send_response(404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def counting_upstream():
    """A provider host that counts every request, at any path (the simulator routes a few)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    _Counter.hits = []
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Counter.hits
    server.shutdown()
    server.server_close()


def _gemini_at(gw, base_url: str) -> None:
    from gateway.services.keys import provider_key_create
    from workspaces.tenancy import workspace_scope

    with workspace_scope(gw.cast.workspace.pk):
        provider_key_create(
            workspace=gw.cast.workspace,
            provider="gemini",
            name="gem-counted",
            secret="gem-counted-0004",
            base_url=base_url,
        )


def _chat(gw, model: str, key: str | None = None, **headers: str) -> httpx.Response:
    return httpx.post(
        gw.base + "/chat/completions",
        headers={"authorization": f"Bearer {key or gw.key}", **headers},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_e2e_attacks_are_400_and_reach_no_upstream(gw, counting_upstream):
    base_url, hits = counting_upstream
    _gemini_at(gw, base_url)
    attacks = [
        ATTACKS[0],
        "../../v1/files#gemini-2.0-flash-lite",
        "gem-counted/../../v1/files#gemini-2.0-flash-lite",
        "gemini-2.0-flash-lite?key=x",
        "gemini-2.0-flash-lite%23x",
    ]
    for model in attacks:
        resp = _chat(gw, model)
        assert resp.status_code == 400, (model, resp.text)
        error = resp.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", "model")
    resp = _chat(gw, "gpt-4o-mini", **{"Alephant-Fallback-Model": ATTACKS[0]})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "model"
    assert hits == []
    assert gw.stack.sim_stats()["total"] == 0
    assert gw.ledger() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_e2e_allowed_models_glob_and_price_follow_the_called_model(gw):
    from tests.gateway.conftest import issue_key

    _obj, key = issue_key(gw.cast, name="flash-only", allowed_models=["gemini-2.0-flash*"])
    assert _chat(gw, ATTACKS[0], key).status_code == 400
    resp = _chat(gw, "gemini-2.5-pro", key)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "model_not_allowed"
    assert gw.stack.sim_stats()["total"] == 0
    resp = _chat(gw, "gem/gemini-2.0-flash-lite", key)
    assert resp.status_code == 200, resp.text
    stats = gw.stack.sim_stats()
    assert stats["by_path"] == {"/v1beta/models/gemini-2.0-flash-lite:generateContent": 1}
    [row] = gw.ledger(request_id=resp.headers["alephant-request-id"])
    assert row.model == "gemini-2.0-flash-lite"
    usage = resp.json()["usage"]
    expected = resolve_price("gemini", "gemini-2.0-flash-lite").cost(
        input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
    )
    assert row.cost_usd == expected
    resp = _chat(gw, "gemini-2.5-pro")  # the unrestricted key: priced as 2.5-pro, not lite
    assert resp.status_code == 200, resp.text
    [row] = gw.ledger(request_id=resp.headers["alephant-request-id"])
    usage = resp.json()["usage"]
    assert row.cost_usd == resolve_price("gemini", "gemini-2.5-pro").cost(
        input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"]
    )
