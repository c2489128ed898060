"""Request validation and the worst-case reservation (`gateway/hotpath/requests.py`), pure.

Fuzzed over each route's request schema: any JSON raises nothing but `RequestInvalid`; a body
that breaks a rule never passes; a valid body's reservation covers every choice it may bill.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.hotpath.requests import (
    MAX_BEST_OF,
    MAX_N,
    MAX_OUTPUT_TOKENS,
    RequestInvalid,
    Validated,
    validate,
)

ROUTES = [
    ("openai", "chat"),
    ("openai", "completions"),
    ("openai", "embeddings"),
    ("openai", "responses"),
    ("anthropic", "messages"),
    ("gemini", "generateContent"),
]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_any = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
# Values that are wrong for a count or a limit, and values that are right.
bad_count = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=MAX_OUTPUT_TOKENS + 1),
    st.text(max_size=6),
    st.floats(),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
limit = st.integers(min_value=1, max_value=MAX_OUTPUT_TOKENS)
chat_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=20)}
)


def _try(fmt: str, endpoint: str, body) -> Validated | None:
    try:
        return validate(endpoint=endpoint, client_format=fmt, body=body)
    except RequestInvalid:
        return None


@FUZZ
@given(route=st.sampled_from(ROUTES), body=json_any)
def test_any_json_raises_only_request_invalid(route, body):
    _try(*route, body)


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    field=st.sampled_from(
        ["model", "messages", "input", "prompt", "contents", "max_tokens", "n", "stream"]
    ),
    value=json_any,
    base=st.fixed_dictionaries(
        {"model": st.just("m"), "messages": st.lists(chat_message, min_size=1)}
    ),
)
def test_mutated_fields_raise_only_request_invalid(route, field, value, base):
    body = {**base, field: value}
    result = _try(*route, body)
    if result is not None:
        _assert_admissible(route, body, result)


def _is_count(value, high) -> bool:
    return type(value) is int and 1 <= value <= high


def _assert_admissible(route, body, result: Validated) -> None:
    """What passed obeys the rules the reservation and the translators rely on."""
    fmt, endpoint = route
    if fmt != "gemini":
        assert isinstance(body["model"], str) and body["model"]
    assert body.get("stream") in (None, True, False)
    assert result.max_output_tokens >= 0 and result.choices >= 1 and result.input_tokens >= 1
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        if body.get(name) is not None and endpoint != "embeddings":
            assert _is_count(body[name], MAX_OUTPUT_TOKENS)
    if endpoint in ("chat", "messages"):
        assert isinstance(body["messages"], list) and body["messages"]
        assert all(isinstance(m, dict) for m in body["messages"])
    if endpoint == "chat" and body.get("n") is not None:
        assert _is_count(body["n"], MAX_N)
    if endpoint == "messages":
        assert _is_count(body["max_tokens"], MAX_OUTPUT_TOKENS)


@FUZZ
@given(
    messages=st.lists(chat_message, min_size=1, max_size=3),
    n=st.none() | st.integers(min_value=1, max_value=MAX_N),
    max_tokens=st.none() | limit,
    max_completion_tokens=st.none() | limit,
)
def test_chat_reservation_covers_every_choice(messages, n, max_tokens, max_completion_tokens):
    body = {"model": "gpt-4o", "messages": messages}
    for name, value in (
        ("n", n),
        ("max_tokens", max_tokens),
        ("max_completion_tokens", max_completion_tokens),
    ):
        if value is not None:
            body[name] = value
    v = validate(endpoint="chat", client_format="openai", body=body, default_max_output_tokens=77)
    per_choice = max([x for x in (max_tokens, max_completion_tokens) if x] or [77])
    assert v.max_output_tokens == per_choice * (n or 1)
    assert v.input_tokens >= 1


@FUZZ
@given(field=st.sampled_from(["max_tokens", "max_completion_tokens", "n"]), value=bad_count)
def test_chat_bad_counts_never_pass(field, value):
    if field == "n" and isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= MAX_N:
            return
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], field: value}
    with pytest.raises(RequestInvalid) as err:
        validate(endpoint="chat", client_format="openai", body=body)
    assert err.value.param == field


@FUZZ
@given(
    prompts=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=5),
    n=st.integers(min_value=1, max_value=MAX_N),
    best_of=st.none() | st.integers(min_value=1, max_value=MAX_BEST_OF),
    max_tokens=limit,
)
def test_completions_reservation_covers_prompts_and_best_of(prompts, n, best_of, max_tokens):
    body = {"model": "m", "prompt": prompts, "n": n, "max_tokens": max_tokens}
    if best_of is not None:
        body["best_of"] = best_of
    result = _try("openai", "completions", body)
    if best_of is not None and best_of < n:
        assert result is None  # best_of below n is refused, never reserved for less
        return
    assert result is not None
    assert result.max_output_tokens == max_tokens * len(prompts) * max(n, best_of or 1)


@FUZZ
@given(
    inputs=st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=20)
    | st.lists(st.lists(st.integers(0, 100_000), min_size=1, max_size=30), min_size=1, max_size=5)
)
def test_embeddings_input_estimate_sums_the_array(inputs):
    v = validate(
        endpoint="embeddings", client_format="openai", body={"model": "e", "input": inputs}
    )
    expected = sum(len(x) if isinstance(x, list) else -(-len(x) // 4) for x in inputs)
    assert v.input_tokens == max(1, expected) and v.max_output_tokens == 0


@pytest.mark.parametrize(
    "fmt,endpoint,body,param",
    [
        ("openai", "chat", {"model": "m", "messages": "hello"}, "messages"),
        ("openai", "chat", {"model": "m", "messages": []}, "messages"),
        ("openai", "chat", {"messages": [{"role": "user", "content": "a"}]}, "model"),
        ("openai", "chat", {"model": 5, "messages": [{"role": "user", "content": "a"}]}, "model"),
        (
            "openai",
            "chat",
            {"model": "m", "messages": [{"role": "user", "content": "a"}], "max_tokens": -100000},
            "max_tokens",
        ),
        (
            "openai",
            "chat",
            {"model": "m", "messages": [{"role": "user", "content": "a"}], "max_tokens": "lots"},
            "max_tokens",
        ),
        (
            "openai",
            "chat",
            {"model": "m", "messages": [{"role": "user", "content": "a"}], "stream": "yes"},
            "stream",
        ),
        (
            "openai",
            "chat",
            {"model": "m", "messages": [{"role": "user", "content": "a"}], "n": 129},
            "n",
        ),
        ("openai", "completions", {"model": "m", "prompt": "a", "n": 4, "best_of": 2}, "best_of"),
        ("openai", "completions", {"model": "m", "prompt": "a", "best_of": 21}, "best_of"),
        ("openai", "embeddings", {"model": "m", "input": ""}, "input"),
        ("openai", "embeddings", {"model": "m", "input": [1, "a"]}, "input"),
        ("openai", "embeddings", {"model": "m", "input": ["a"] * 2049}, "input"),
        ("openai", "responses", {"model": "m", "input": 3}, "input"),
        (
            "openai",
            "responses",
            {"model": "m", "input": "a", "max_output_tokens": 0},
            "max_output_tokens",
        ),
        (
            "anthropic",
            "messages",
            {"model": "m", "messages": [{"role": "user", "content": "a"}]},
            "max_tokens",
        ),
        (
            "anthropic",
            "messages",
            {
                "model": "m",
                "max_tokens": 100,
                "thinking": {"type": "enabled", "budget_tokens": 200},
                "messages": [{"role": "user", "content": "a"}],
            },
            "thinking.budget_tokens",
        ),
        (
            "gemini",
            "generateContent",
            {"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"candidateCount": 9}},
            "generationConfig.candidateCount",
        ),
        (
            "gemini",
            "generateContent",
            {"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"maxOutputTokens": -1}},
            "generationConfig.maxOutputTokens",
        ),
    ],
)
def test_known_abuses_are_refused_with_their_param(fmt, endpoint, body, param):
    with pytest.raises(RequestInvalid) as err:
        validate(endpoint=endpoint, client_format=fmt, body=body)
    assert err.value.param == param


def test_worst_cases_per_route():
    anthropic = validate(
        endpoint="messages",
        client_format="anthropic",
        body={
            "model": "claude",
            "max_tokens": 2000,
            "thinking": {"type": "enabled", "budget_tokens": 1500},
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}],
        },
    )
    assert anthropic.max_output_tokens == 2000  # thinking is inside max_tokens
    gemini = validate(
        endpoint="generateContent",
        client_format="gemini",
        body={
            "contents": [{"role": "user", "parts": [{"text": "a"}]}],
            "generationConfig": {"maxOutputTokens": 300, "candidateCount": 4},
        },
    )
    assert gemini.max_output_tokens == 1200 and gemini.choices == 4
    responses = validate(
        endpoint="responses",
        client_format="openai",
        body={"model": "o3", "input": "a", "max_output_tokens": 5000, "stream": True},
    )
    assert responses.max_output_tokens == 5000 and responses.stream
    chat = validate(
        endpoint="chat",
        client_format="openai",
        body={
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "n": 8,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        default_max_output_tokens=4096,
    )
    assert chat.max_output_tokens == 8 * 4096 and chat.client_wants_usage
