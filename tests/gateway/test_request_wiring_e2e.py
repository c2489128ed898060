"""Request validation wired into a real gateway process (issue 11: validate before admitting).

A fuzz test sends hypothesis-built bodies for every `/v1` route through uvicorn: the gateway
never answers 5xx, and a body `requests.validate` calls invalid is a 400 in the route's error
format that the upstream simulator never sees. Then the cases from the issue: `n` multiplies
the reservation (refused near a cap where n=1 passes), a negative or non-integer `max_tokens`
and a string `messages` are 400s that are not forwarded.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.hotpath.requests import RequestInvalid, validate

pytestmark = pytest.mark.slow

EXAMPLES_PER_ROUTE = 150
PATHS = {
    "chat": "/chat/completions",
    "completions": "/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
    "messages": "/messages",
}
MODELS = {"messages": "ant/claude-3-5-haiku-latest", "embeddings": "oai/text-embedding-3-small"}

# Values of every JSON type, including the ones that broke the first build (negative or huge
# limits, strings where numbers go, objects where strings go).
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=6),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    st.dictionaries(st.sampled_from(["role", "content", "type", "x"]), st.integers(), max_size=2),
)
limit = st.one_of(st.integers(min_value=1, max_value=64), junk)
message = st.one_of(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system"]),
            "content": st.one_of(st.just("hi"), st.just([{"type": "text", "text": "hi"}]), junk),
        }
    ),
    junk,
)
messages = st.one_of(st.lists(message, min_size=1, max_size=3), junk)
text_input = st.one_of(st.just("hello"), st.just(["a", "b"]), st.just([1, 2, 3]), junk)
stream = st.one_of(st.just(False), junk)  # a valid `stream: true` needs an SSE reader: not here

FIELDS = {
    "chat": {
        "messages": messages,
        "max_tokens": limit,
        "max_completion_tokens": limit,
        "n": st.one_of(st.integers(min_value=1, max_value=3), junk),
        "stop": st.one_of(st.just("x"), st.just(["x", "y"]), junk),
        "stream": stream,
        "stream_options": st.one_of(st.just({"include_usage": True}), junk),
        "tools": st.one_of(
            st.just([{"type": "function", "function": {"name": "f", "parameters": {}}}]), junk
        ),
    },
    "completions": {
        "prompt": text_input,
        "max_tokens": limit,
        "n": st.one_of(st.integers(min_value=1, max_value=2), junk),
        "best_of": st.one_of(st.integers(min_value=1, max_value=3), junk),
        "stream": stream,
    },
    "embeddings": {
        "input": text_input,
        "dimensions": st.one_of(st.integers(min_value=1, max_value=8), junk),
        "encoding_format": st.one_of(st.just("float"), junk),
    },
    "responses": {
        "input": st.one_of(text_input, st.just([{"role": "user", "content": "hi"}])),
        "instructions": st.one_of(st.just("be brief"), junk),
        "max_output_tokens": limit,
        "stream": stream,
    },
    "messages": {
        "messages": messages,
        "max_tokens": limit,
        "system": st.one_of(st.just("be brief"), junk),
        "thinking": st.one_of(st.just({"type": "enabled", "budget_tokens": 4}), junk),
        "stop_sequences": st.one_of(st.just(["x"]), junk),
        "stream": stream,
    },
}


VALID_FIELDS = {
    "chat": {
        "max_completion_tokens": st.integers(min_value=1, max_value=64),
        "n": st.integers(min_value=1, max_value=3),
        "stop": st.just(["x", "y"]),
        "stream_options": st.just({"include_usage": True}),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "system"]), "content": st.just("hi")}
            ),
            min_size=1,
            max_size=3,
        ),
    },
    "completions": {
        "prompt": st.sampled_from(["hello", ["a", "b"], [1, 2, 3]]),
        "n": st.just(1),
        "best_of": st.integers(min_value=1, max_value=3),
    },
    "embeddings": {
        "input": st.sampled_from(["hello", ["a", "b"], [1, 2, 3]]),
        "encoding_format": st.just("float"),
    },
    "responses": {"instructions": st.just("be brief"), "stream": st.just(False)},
    "messages": {
        "system": st.just("be brief"),
        "thinking": st.just({"type": "enabled", "budget_tokens": 4}),
        "stop_sequences": st.just(["x"]),
    },
}
VALID = {
    "chat": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
    "completions": {"prompt": "hello", "max_tokens": 8},
    "embeddings": {"input": "hello"},
    "responses": {"input": "hello", "max_output_tokens": 8},
    "messages": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
}


def _bodies(endpoint: str):
    """A valid body, then its fields drawn from the schema (valid or junk), sometimes one field
    forced to junk, sometimes no object at all (hypothesis leans to the junk: ~90 % invalid)."""
    fields = FIELDS[endpoint]
    base = {"model": MODELS.get(endpoint, "oai/gpt-4o-mini"), **VALID[endpoint]}
    drawn = st.fixed_dictionaries({}, optional=VALID_FIELDS[endpoint])
    any_field = {"model": junk, **fields}
    names = st.sampled_from(sorted(any_field))
    broken = st.one_of(st.none(), names.flatmap(lambda n: st.tuples(st.just(n), any_field[n])))
    body = st.builds(
        lambda extra, one: {**base, **extra, **({one[0]: one[1]} if one else {})}, drawn, broken
    )
    return st.one_of(body, body, body, body, body, junk)


def _is_invalid(endpoint: str, body) -> bool:
    try:
        validate(
            endpoint=endpoint,
            client_format="anthropic" if endpoint == "messages" else "openai",
            body=body,
            raw_size=100,
        )
    except RequestInvalid:
        return True
    return False


def _post(gw, endpoint: str, body) -> httpx.Response:
    return httpx.post(
        gw.base + PATHS[endpoint],
        json=body,
        headers={"authorization": "Bearer " + gw.key},
        timeout=30,
    )


def _hits(gw) -> int:
    return gw.stack.sim_stats()["total"]


@pytest.mark.parametrize("endpoint", list(PATHS))
def test_fuzzed_requests_never_5xx_and_invalid_ones_never_reach_the_provider(gw, endpoint):
    seen = {"invalid": 0, "forwarded": 0, "hits": _hits(gw)}

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        database=None,
        # A fixed seed: the mix of valid and invalid bodies is the same on every run, so the
        # "both sides exercised" counts below can't flake (a random run once drew 3 valid ones).
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=_bodies(endpoint))
    def check(body) -> None:
        before = seen["hits"]
        response = _post(gw, endpoint, body)
        seen["hits"] = _hits(gw)
        assert response.status_code < 500, (body, response.text)
        if _is_invalid(endpoint, body) or not isinstance(body, dict):
            seen["invalid"] += 1
            assert response.status_code == 400, (body, response.text)
            error = response.json()["error"]
            if endpoint == "messages":
                assert response.json()["type"] == "error"
            else:
                assert error["type"] == "invalid_request_error"
            assert seen["hits"] == before, f"an invalid request was forwarded: {body!r}"
        elif seen["hits"] > before:
            seen["forwarded"] += 1

    check()
    # The strategies exercise both sides of the rule.
    assert seen["invalid"] > EXAMPLES_PER_ROUTE // 5, seen
    assert seen["forwarded"] >= 5, seen


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"max_tokens": -100000}, "max_tokens"),
        ({"max_tokens": "lots"}, "max_tokens"),
        ({"messages": "hello"}, "messages"),
        ({"n": 0}, "n"),
        ({"n": 10**6}, "n"),
    ],
)
def test_malformed_limits_and_messages_are_400_and_not_forwarded(gw, patch, param):
    body = {"model": "oai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = _post(gw, "chat", {**body, **patch})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert _hits(gw) == 0


def test_anthropic_route_answers_400_in_anthropic_format(gw):
    response = _post(
        gw, "messages", {"model": "ant/claude-3-5-haiku-latest", "max_tokens": -1, "messages": []}
    )
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert _hits(gw) == 0


@pytest.fixture
def capped(gw):
    """An output-only price ($0.001 a token, no input price) and a $0.05 member budget: a call
    reserves exactly max_tokens x choices x $0.001."""
    from billing.models import PriceOverride
    from billing.services.budgets import budget_create
    from workspaces.tenancy import workspace_scope

    cast = gw.cast
    with workspace_scope(cast.workspace.pk):
        PriceOverride.objects.create(
            workspace=cast.workspace,
            provider="openai",
            model="gpt-4o",
            input_per_mtok=Decimal(0),
            output_per_mtok=Decimal(1000),
        )
        budget_create(
            workspace=cast.workspace,
            actor=cast.owner,
            scope_type="member",
            scope_id=cast.member.pk,
            amount_usd="0.05",
            period="month",
            throttle_at=None,
        )
    return gw


def _chat(gw, *, n: int, max_tokens: int = 10, tokens: int = 1) -> httpx.Response:
    return _post(
        gw,
        "chat",
        {
            "model": "oai/gpt-4o",
            "n": n,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"hi [[sim:tokens={tokens}]]"}],
        },
    )


def test_n_multiplies_the_reservation(capped):
    # 10 tokens x 8 choices x $0.001 = $0.08 > the $0.05 cap; 10 x 1 = $0.01 fits.
    refused = _chat(capped, n=8)
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["type"] == "budget_exceeded"
    assert _hits(capped) == 0
    assert _chat(capped, n=1).status_code == 200
    # 10 x 5 = $0.05 still fits next to $0.001 spent? No: 0.001 + 0.05 > 0.05.
    assert _chat(capped, n=5).status_code == 402
    assert _chat(capped, n=4).status_code == 200
    assert _hits(capped) == 2
