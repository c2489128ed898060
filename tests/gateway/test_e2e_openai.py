"""The official `openai` SDK against a real gateway and the simulator."""

from __future__ import annotations

import httpx
import openai
import pytest

from billing.pricing import cost_usd
from core.money import usd_exact
from tests.gateway.servers import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def client(gw, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base, api_key=gw.key, max_retries=0, **kw)


def test_chat_non_stream_costs_catalog_price_and_is_recorded(gw):
    raw = client(gw).chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hello there"}],
        extra_headers={"Alephant-Session-Id": "s-1", "Alephant-Property-Team": "core"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    usage = completion.usage
    expected = cost_usd(
        "openai",
        "gpt-4o-mini",
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
    )
    assert raw.headers["alephant-cost-usd"] == usd_exact(expected)
    request_id = raw.headers["alephant-request-id"]
    [record] = gw.ledger(request_id=request_id)
    assert record.cost_usd == expected
    assert (record.input_tokens, record.output_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert record.member_id == gw.cast.member.pk
    assert record.department_id == gw.cast.member.department_id
    assert record.gateway_key_id == gw.key_obj.pk
    assert record.provider == "openai" and record.endpoint == "chat" and not record.estimated
    assert record.session_id == "s-1" and record.properties == {"team": "core"}
    assert len(record.fingerprint) == 64
    # The provider saw the workspace's own key, never the gateway key.
    assert gw.stack.sim_stats()["last_auth"] == "Bearer sk-sim-openai-0001"


def test_chat_stream_strips_usage_unless_asked_and_ends_with_cost(gw):
    c = client(gw)
    chunks = list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text and all(ch.choices for ch in chunks)  # no usage-only chunk leaked
    assert gw.stack.sim_stats()["last_body"]["stream_options"] == {"include_usage": True}

    with_usage = list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage.completion_tokens == 12

    with httpx.stream(
        "POST",
        gw.base + "/chat/completions",
        headers={"authorization": f"Bearer {gw.key}"},
        json={
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "stream please"}],
        },
    ) as resp:
        body = resp.read().decode()
        request_id = resp.headers["alephant-request-id"]
    assert "data: [DONE]" in body
    last_line = body.strip().splitlines()[-1]
    assert last_line.startswith(": alephant-cost-usd=")
    [record] = gw.ledger(request_id=request_id)
    assert record.stream and not record.estimated and record.output_tokens == 12
    assert last_line == ": alephant-cost-usd=" + usd_exact(record.cost_usd)


def test_tools_and_json_mode(gw):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    c = client(gw)
    first = c.chat.completions.create(
        model="gpt-4o-mini", tools=tools, messages=[{"role": "user", "content": "weather in Paris"}]
    )
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    second = c.chat.completions.create(
        model="gpt-4o-mini",
        tools=tools,
        messages=[
            {"role": "user", "content": "weather in Paris"},
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
    )
    assert second.choices[0].message.content
    streamed = list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            tools=tools,
            stream=True,
            messages=[{"role": "user", "content": "weather in Paris"}],
        )
    )
    args = "".join(
        ch.choices[0].delta.tool_calls[0].function.arguments or ""
        for ch in streamed
        if ch.choices and ch.choices[0].delta.tool_calls
    )
    assert args == call.function.arguments
    json_reply = c.chat.completions.create(
        model="gpt-4o-mini",
        response_format={"type": "json_object"},
        messages=[{"role": "user", "content": "json"}],
    )
    import json

    assert "reply" in json.loads(json_reply.choices[0].message.content)


def test_embeddings_completions_responses(gw):
    c = client(gw)
    emb = c.embeddings.create(model="text-embedding-3-small", input=["a b c", "d e f"])
    assert len(emb.data) == 2 and emb.usage.prompt_tokens == 4
    legacy = c.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi", max_tokens=5)
    assert legacy.choices[0].finish_reason == "length"
    resp = c.responses.create(model="gpt-4o-mini", input="hello responses")
    assert resp.output_text and resp.usage.output_tokens == 12
    with c.responses.stream(model="gpt-4o-mini", input="hello responses") as stream:
        final = stream.get_final_response()
    assert final.output_text == resp.output_text
    records = gw.ledger()
    assert {r.endpoint for r in records} == {"embeddings", "completions", "responses"}
    emb_record = next(r for r in records if r.endpoint == "embeddings")
    assert emb_record.cost_usd == cost_usd(
        "openai", "text-embedding-3-small", input_tokens=4, output_tokens=0
    )
    assert all(r.cost_usd > 0 and not r.estimated for r in records)


def test_errors_are_sdk_exceptions_and_refused_calls_never_reach_provider(gw):
    c = client(gw)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gw.base, api_key="alph_nope", max_retries=0).models.list()
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=gw.base, api_key="alph_AAAAAAAA_" + "B" * 40, max_retries=0
        ).chat.completions.create(model="gpt-4o-mini", messages=[])
    with pytest.raises(openai.NotFoundError) as missing:
        c.chat.completions.create(
            model="no-such-model-xyz", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model="gpt-4o-mini", messages=[])
    bad = httpx.post(
        gw.base + "/chat/completions",
        content=b"{nope",
        headers={"authorization": f"Bearer {gw.key}"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    assert gw.stack.sim_stats()["total"] == 0

    _restricted_obj, restricted = __import__(
        "tests.gateway.conftest", fromlist=["issue_key"]
    ).issue_key(gw.cast, name="restricted", allowed_models=["claude-*"])
    with pytest.raises(openai.PermissionDeniedError):
        openai.OpenAI(base_url=gw.base, api_key=restricted, max_retries=0).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        )
    assert gw.stack.sim_stats()["total"] == 0

    # Upstream failures: retried once, then 502 / 429 with Retry-After; the provider's message.
    with pytest.raises(openai.InternalServerError) as upstream:
        c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x [[sim:fail=500]]"}]
        )
    assert upstream.value.status_code == 502
    assert "simulated upstream error 500" in upstream.value.message
    assert gw.stack.sim_stats()["total"] == 2
    with pytest.raises(openai.RateLimitError) as limited:
        c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x [[sim:fail=429]]"}]
        )
    assert limited.value.response.headers["retry-after"]
    # A transient failure is retried and the call succeeds; both attempts are in the ledger.
    ok = c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "y [[sim:fail=503,times=1]]"}]
    )
    request_id = ok.headers["alephant-request-id"]
    attempts = gw.ledger(request_id__startswith=request_id)
    assert sorted((r.request_id, r.status_code) for r in attempts) == [
        (request_id, 502),
        (request_id + "-1", 200),
    ]


def test_timeout_is_504_and_malformed_is_502(gw):
    from gateway.services.keys import provider_key_create
    from workspaces.tenancy import workspace_scope

    with workspace_scope(gw.cast.workspace.pk):
        provider_key_create(
            workspace=gw.cast.workspace,
            provider="openai",
            name="slow",
            secret="sk-slow-0004",
            base_url=gw.stack.sim_url + "/v1",
            timeout_s=1,
        )
    c = client(gw)
    with pytest.raises(openai.APIStatusError) as timed_out:
        c.chat.completions.create(
            model="slow/gpt-4o-mini", messages=[{"role": "user", "content": "[[sim:fail=timeout]]"}]
        )
    assert timed_out.value.status_code == 504
    with pytest.raises(openai.InternalServerError) as malformed:
        c.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "[[sim:fail=malformed]]"}]
        )
    assert malformed.value.status_code == 502


def test_body_limit_and_models_list(gw):
    big = httpx.post(
        gw.base + "/chat/completions",
        headers={"authorization": f"Bearer {gw.key}"},
        content=b"{" + b" " * (8 * 1024 * 1024 + 10) + b"}",
    )
    assert big.status_code == 400 and big.json()["error"]["code"] == "request_too_large"
    models = client(gw).models.list()
    ids = {m.id for m in models.data}
    assert {"gpt-4o-mini", "claude-3-5-haiku-latest", "gemini-2.0-flash"} <= ids
    row = next(m for m in models.data if m.id == "gpt-4o-mini")
    assert row.model_extra["alephant"]["pricing"]["input_per_mtok"] == "0.15"


def _refusal(call) -> openai.AuthenticationError | None:
    try:
        call()
    except openai.AuthenticationError as refused:
        return refused
    return None


def test_revoked_key_fails_within_a_second(gw):
    from gateway.services.keys import gateway_key_revoke
    from workspaces.tenancy import workspace_scope

    c = client(gw)

    def call():
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])

    call()
    with workspace_scope(gw.cast.workspace.pk):
        gateway_key_revoke(key=gw.key_obj)
    # Refused as soon as the gateway drops its in-memory snapshot (SNAPSHOT_CACHE_TTL in tests).
    assert wait_until(lambda: _refusal(call), timeout=1.0)


def test_agent_header_only_for_own_agents(gw):
    from workspaces.services.workspaces import agent_create
    from workspaces.tenancy import workspace_scope

    with workspace_scope(gw.cast.workspace.pk):
        mine = agent_create(
            workspace=gw.cast.workspace, slug="mybot", name="Mine", owner=gw.cast.member
        )
        agent_create(workspace=gw.cast.workspace, slug="theirs", name="Theirs", owner=gw.cast.admin)
    from tests.gateway.conftest import issue_key

    _obj, key = issue_key(gw.cast, name="after-agents")
    c = openai.OpenAI(base_url=gw.base, api_key=key, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        extra_headers={"Alephant-Agent": "mybot"},
    )
    [record] = gw.ledger(request_id=raw.headers["alephant-request-id"])
    assert record.agent_id == mine.pk and record.member_id == gw.cast.member.pk
    with pytest.raises(openai.PermissionDeniedError):
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"Alephant-Agent": "theirs"},
        )


def test_response_cache_hit_is_free_and_recorded_as_saved(gw):
    c = client(gw)
    ask = dict(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "cache me"}],
        extra_headers={"Alephant-Cache": "on"},
    )
    first = c.chat.completions.with_raw_response.create(**ask)
    second = c.chat.completions.with_raw_response.create(**ask)
    assert first.headers["alephant-cache"] == "miss" and second.headers["alephant-cache"] == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert gw.stack.sim_stats()["total"] == 1
    [paid] = gw.ledger(request_id=first.headers["alephant-request-id"])
    [hit] = gw.ledger(request_id=second.headers["alephant-request-id"])
    assert hit.cache_hit and hit.cost_usd == 0 and hit.saved_usd == paid.cost_usd > 0
    assert second.headers["alephant-saved-usd"] == usd_exact(paid.cost_usd)


def test_rate_cap_refuses_before_the_provider_with_retry_after(gw):
    from tests.gateway.conftest import issue_key

    _obj, key = issue_key(gw.cast, name="slow-lane", rpm=2)
    c = openai.OpenAI(base_url=gw.base, api_key=key, max_retries=0)
    for _ in range(2):
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as limited:
        c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert gw.stack.sim_stats()["total"] == 2


FAMILIES = [
    ("groq", "llama-3.3-70b-versatile"),
    ("mistral", "mistral-large-latest"),
    ("deepseek", "deepseek-chat"),
    ("xai", "grok-3"),
    ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    ("openrouter", "openai/gpt-4o"),
    ("azure-openai", "gpt-4o"),
]


def test_cost_equals_catalog_price_for_each_openai_compatible_family(gw):
    from gateway.services.keys import provider_key_create
    from workspaces.tenancy import workspace_scope

    with workspace_scope(gw.cast.workspace.pk):
        for family, _model in FAMILIES:
            base = gw.stack.sim_url if family == "azure-openai" else gw.stack.sim_url + "/v1"
            provider_key_create(
                workspace=gw.cast.workspace,
                provider=family,
                name=f"k-{family}",
                secret=f"sk-{family}-0000",
                base_url=base,
            )
    c = client(gw)
    for family, model in FAMILIES:
        raw = c.chat.completions.with_raw_response.create(
            model=f"k-{family}/{model}", messages=[{"role": "user", "content": f"hi {family}"}]
        )
        usage = raw.parse().usage
        [record] = gw.ledger(request_id=raw.headers["alephant-request-id"])
        expected = cost_usd(
            family, model, input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens
        )
        assert (record.provider, record.model) == (family, model)
        assert record.cost_usd == expected > 0, family
    assert gw.stack.sim_stats()["by_path"]["/openai/deployments/gpt-4o/chat/completions"] == 1


def test_fallback_model_after_retries_and_reasoning_tokens(gw):
    from gateway.services.keys import provider_key_create
    from tests.gateway.servers import free_port
    from workspaces.tenancy import workspace_scope

    with workspace_scope(gw.cast.workspace.pk):
        provider_key_create(
            workspace=gw.cast.workspace,
            provider="openai",
            name="dead",
            secret="sk-dead-0000",
            base_url=f"http://127.0.0.1:{free_port()}/v1",
        )
    raw = client(gw).chat.completions.with_raw_response.create(
        model="dead/gpt-4o-mini",
        messages=[{"role": "user", "content": "x [[sim:reasoning=5]]"}],
        extra_headers={"Alephant-Fallback-Model": "oai/gpt-4o-mini"},
    )
    assert raw.parse().usage.completion_tokens_details.reasoning_tokens == 5
    request_id = raw.headers["alephant-request-id"]
    attempts = sorted(
        (r.request_id, r.status_code, r.error_type, r.reasoning_tokens, r.cost_usd > 0)
        for r in gw.ledger(request_id__startswith=request_id)
    )
    assert attempts == [
        (request_id, 502, "upstream_unreachable", 0, False),
        (request_id + "-1", 502, "upstream_unreachable", 0, False),
        (request_id + "-2", 200, "", 5, True),
    ]


def test_expired_key_is_refused(gw):
    import datetime as dt

    from django.utils import timezone

    from gateway.services.keys import gateway_key_update
    from workspaces.tenancy import workspace_scope

    with workspace_scope(gw.cast.workspace.pk):
        gateway_key_update(key=gw.key_obj, expires_at=timezone.now() - dt.timedelta(seconds=1))
    expired = wait_until(
        lambda: _refusal(
            lambda: client(gw).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
            )
        ),
        timeout=1.0,
    )
    assert expired is not None and expired.body["code"] == "expired_api_key"
