"""Request validation and the worst-case reservation, as pure functions (no I/O, no Django).

`validate(endpoint=..., client_format=..., body=...)` checks every field that is priced, routes
the call or is read by a translator, and returns a `Validated` carrying the worst case the
reservation must cover; anything else raises `RequestInvalid(param, message)` (a 400 in the
route's error format). It never raises anything else, whatever JSON it is given
(`tests/gateway/test_request_validation.py` fuzzes that).

The worst case of output tokens is the per-choice limit times every choice the provider may
generate: `n`, `best_of` (completions generate and bill `best_of` candidates), the number of
prompts of a batched completions call, Gemini `candidateCount`. Reasoning models count their
reasoning inside the same limit (`max_completion_tokens`, `max_output_tokens`, Anthropic
`max_tokens` with `thinking`, Gemini `maxOutputTokens`), so no separate term is needed. A
request with no limit is reserved at `default_max_output_tokens`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

MAX_N = 128  # OpenAI's bound on `n`
MAX_BEST_OF = 20  # OpenAI's bound on `best_of`
MAX_CANDIDATES = 8  # Gemini's bound on `candidateCount`
MAX_OUTPUT_TOKENS = 1_000_000  # per choice; past any model's output window
MAX_PROMPTS = 2048  # prompts in one completions call, inputs in one embeddings call
MAX_INPUT_TOKENS = 8192  # tokens of one token-array input (OpenAI embeddings' per-input limit)
MAX_STOP = 16
MAX_MODEL_CHARS = 256
CHARS_PER_TOKEN = 4

OPENAI_ENDPOINTS = ("chat", "completions", "embeddings", "responses")


class RequestInvalid(Exception):
    """The request is malformed; `param` names the offending field (dotted path)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


@dataclass(frozen=True, slots=True)
class Validated:
    endpoint: str
    model: str
    stream: bool
    client_wants_usage: bool  # stream_options.include_usage
    choices: int  # every output the provider may generate (n, best_of, prompts, candidates)
    per_choice_output_tokens: int  # the limit on one choice, reasoning included
    max_output_tokens: int  # per_choice_output_tokens x choices: what the reservation covers
    input_tokens: int  # estimate: what the request body can cost as input


def validate(
    *,
    endpoint: str,
    client_format: str,
    body: Any,
    raw_size: int | None = None,
    default_max_output_tokens: int = 4096,
) -> Validated:
    """Check `body` (parsed JSON) for `endpoint` in `client_format` ("openai", "anthropic",
    "gemini"). `raw_size`: the request's byte length, the input estimate (4 bytes a token:
    JSON punctuation makes it an over-estimate, which a reservation wants)."""
    if not isinstance(body, dict):
        raise RequestInvalid("", "Request body must be a JSON object.")
    check = _CHECKS.get((client_format, endpoint))
    if check is None:
        raise RequestInvalid("", f"Unknown route {client_format}/{endpoint}.")
    model = _model(body, required=client_format != "gemini")
    stream = _bool(body, "stream")
    per_choice, choices, input_tokens = check(body, default_max_output_tokens)
    if input_tokens is None:
        input_tokens = _estimate(raw_size, body)
    options = _object(body, "stream_options")
    wants_usage = _bool(options, "include_usage", where="stream_options")
    return Validated(
        endpoint=endpoint,
        model=model,
        stream=stream and endpoint != "embeddings",
        client_wants_usage=wants_usage,
        choices=choices,
        per_choice_output_tokens=per_choice,
        max_output_tokens=per_choice * choices,
        input_tokens=max(1, input_tokens),
    )


# --- routes -------------------------------------------------------------------------------

Check = Callable[[dict, int], tuple[int, int, int | None]]  # (per choice, choices, input|None)


def _chat(body: dict, default: int) -> tuple[int, int, int | None]:
    messages = _list(body, "messages", required=True, nonempty=True)
    for i, message in enumerate(messages):
        _chat_message(message, f"messages[{i}]")
    _tools(body)
    _stop(body, "stop")
    n = _int(body, "n", low=1, high=MAX_N) or 1
    limit = _limit(body, ("max_completion_tokens", "max_tokens"), default)
    return limit, n, None


def _completions(body: dict, default: int) -> tuple[int, int, int | None]:
    prompts = _prompts(body, "prompt")
    n = _int(body, "n", low=1, high=MAX_N) or 1
    best_of = _int(body, "best_of", low=1, high=MAX_BEST_OF)
    if best_of is not None and best_of < n:
        raise RequestInvalid("best_of", "`best_of` must be greater than or equal to `n`.")
    _stop(body, "stop")
    limit = _limit(body, ("max_tokens",), default)
    return limit, prompts * max(n, best_of or 1), None


def _embeddings(body: dict, default: int) -> tuple[int, int, int | None]:
    value = body.get("input")
    if value is None:
        raise RequestInvalid("input", "Missing required parameter: `input`.")
    _int(body, "dimensions", low=1, high=65536)
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise RequestInvalid("encoding_format", "`encoding_format` must be float or base64.")
    return 0, 1, _embedding_tokens(value)


def _responses(body: dict, default: int) -> tuple[int, int, int | None]:
    value = body.get("input")
    if isinstance(value, str):
        if not value:
            raise RequestInvalid("input", "`input` must not be empty.")
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            if not isinstance(item, dict | str):
                raise RequestInvalid(f"input[{i}]", "Each input item must be an object.")
    else:
        raise RequestInvalid("input", "`input` must be a string or a non-empty array.")
    _string(body, "instructions")
    _tools(body, responses=True)
    return _limit(body, ("max_output_tokens",), default), 1, None


def _messages(body: dict, default: int) -> tuple[int, int, int | None]:
    messages = _list(body, "messages", required=True, nonempty=True)
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestInvalid(where, "Each message must be an object.")
        if message.get("role") not in ("user", "assistant"):
            raise RequestInvalid(f"{where}.role", "`role` must be user or assistant.")
        _content(message.get("content"), f"{where}.content", required=True)
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _content(system, "system", required=False)
    limit = _int(body, "max_tokens", low=1, high=MAX_OUTPUT_TOKENS, required=True)
    assert limit is not None
    thinking = _object(body, "thinking")
    budget = _int(thinking, "budget_tokens", low=0, high=MAX_OUTPUT_TOKENS, where="thinking")
    if budget is not None and budget >= limit:
        raise RequestInvalid("thinking.budget_tokens", "must be less than `max_tokens`.")
    _list(body, "tools", of=dict)
    _list(body, "stop_sequences", of=str)
    _object(body, "tool_choice")
    return limit, 1, None


def _gemini(body: dict, default: int) -> tuple[int, int, int | None]:
    contents = _list(body, "contents", required=True, nonempty=True)
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise RequestInvalid(f"contents[{i}]", "Each content must be an object.")
        _list(content, "parts", required=True, nonempty=True, of=dict, where=f"contents[{i}]")
    config = _object(body, "generationConfig")
    where = "generationConfig"
    limit = _int(config, "maxOutputTokens", low=1, high=MAX_OUTPUT_TOKENS, where=where)
    candidates = _int(config, "candidateCount", low=1, high=MAX_CANDIDATES, where=where)
    _object(config, "thinkingConfig", where=where)
    _list(config, "stopSequences", of=str, where=where)
    return limit or default, candidates or 1, None


_CHECKS: dict[tuple[str, str], Check] = {
    ("openai", "chat"): _chat,
    ("openai", "completions"): _completions,
    ("openai", "embeddings"): _embeddings,
    ("openai", "responses"): _responses,
    ("anthropic", "messages"): _messages,
    ("gemini", "generateContent"): _gemini,
    ("gemini", "streamGenerateContent"): _gemini,
}


# --- fields -------------------------------------------------------------------------------

CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _model(body: dict, *, required: bool) -> str:
    value = body.get("model")
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value:
        raise RequestInvalid("model", "Missing required parameter: `model` (a string).")
    if len(value) > MAX_MODEL_CHARS or not value.isprintable():
        raise RequestInvalid("model", "`model` is not a valid model name.")
    return value


def _path(where: str | None, name: str) -> str:
    return f"{where}.{name}" if where else name


def _bool(obj: dict, name: str, *, where: str | None = None) -> bool:
    value = obj.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestInvalid(_path(where, name), f"`{name}` must be a boolean.")
    return value


def _int(
    obj: dict,
    name: str,
    *,
    low: int,
    high: int,
    required: bool = False,
    where: str | None = None,
) -> int | None:
    value = obj.get(name)
    param = _path(where, name)
    if value is None:
        if required:
            raise RequestInvalid(param, f"Missing required parameter: `{name}`.")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestInvalid(param, f"`{name}` must be an integer.")
    if not low <= value <= high:
        raise RequestInvalid(param, f"`{name}` must be between {low} and {high}.")
    return value


def _limit(body: dict, names: tuple[str, ...], default: int) -> int:
    """The per-choice output limit: the largest one given (worst case), else `default`."""
    given = [_int(body, n, low=1, high=MAX_OUTPUT_TOKENS) for n in names]
    present = [v for v in given if v is not None]
    return max(present) if present else default


def _object(obj: dict, name: str, *, where: str | None = None) -> dict:
    value = obj.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestInvalid(_path(where, name), f"`{name}` must be an object.")
    return value


def _string(obj: dict, name: str) -> None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise RequestInvalid(name, f"`{name}` must be a string.")


def _list(
    obj: dict,
    name: str,
    *,
    required: bool = False,
    nonempty: bool = False,
    of: type | None = None,
    where: str | None = None,
) -> list:
    value = obj.get(name)
    param = _path(where, name)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise RequestInvalid(param, f"`{name}` must be an array.")
    if nonempty and not value:
        raise RequestInvalid(param, f"`{name}` must not be empty.")
    if of is not None:
        for i, item in enumerate(value):
            if not isinstance(item, of):
                raise RequestInvalid(f"{param}[{i}]", f"Each `{name}` item must be {of.__name__}.")
    return value


def _content(value: Any, where: str, *, required: bool) -> None:
    """A message's content: a string or an array of typed parts (objects)."""
    if value is None and not required:
        return
    if isinstance(value, str):
        return
    if not isinstance(value, list) or (required and not value):
        raise RequestInvalid(where, "`content` must be a string or an array of parts.")
    for i, part in enumerate(value):
        if not isinstance(part, dict) or not isinstance(part.get("type", ""), str):
            raise RequestInvalid(f"{where}[{i}]", "Each content part must be a typed object.")


def _chat_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise RequestInvalid(where, "Each message must be an object.")
    if message.get("role") not in CHAT_ROLES:
        raise RequestInvalid(f"{where}.role", "`role` is missing or unknown.")
    _content(message.get("content"), f"{where}.content", required=False)
    for i, call in enumerate(_list(message, "tool_calls", of=dict, where=where)):
        fn = call.get("function")
        if fn is None:
            continue
        if not isinstance(fn, dict) or not isinstance(fn.get("arguments", ""), str):
            raise RequestInvalid(
                f"{where}.tool_calls[{i}].function", "`function` needs string `arguments`."
            )


def _tools(body: dict, *, responses: bool = False) -> None:
    for i, tool in enumerate(_list(body, "tools", of=dict)):
        if responses or tool.get("type") != "function":
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise RequestInvalid(f"tools[{i}].function", "A function tool needs a `name`.")
        if not isinstance(fn.get("parameters") or {}, dict):
            raise RequestInvalid(f"tools[{i}].function.parameters", "must be an object.")


def _stop(body: dict, name: str) -> None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list) or len(value) > MAX_STOP:
        raise RequestInvalid(name, f"`{name}` must be a string or up to {MAX_STOP} strings.")
    if not all(isinstance(item, str) for item in value):
        raise RequestInvalid(name, f"`{name}` must be a string or an array of strings.")


def _token_array(value: list, where: str) -> int:
    if not value or len(value) > MAX_INPUT_TOKENS:
        raise RequestInvalid(where, f"A token array holds 1 to {MAX_INPUT_TOKENS} tokens.")
    for token in value:
        if isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < 2**32:
            raise RequestInvalid(where, "Tokens must be non-negative integers.")
    return len(value)


def _batch(value: Any, name: str) -> list[int]:
    """Token counts of a string / strings / token array / token arrays input (strings
    estimated at 4 characters a token). One entry per input."""
    if isinstance(value, str):
        if not value:
            raise RequestInvalid(name, f"`{name}` must not be empty.")
        return [-(-len(value) // CHARS_PER_TOKEN)]
    if not isinstance(value, list) or not value:
        raise RequestInvalid(name, f"`{name}` must be a string or a non-empty array.")
    if len(value) > MAX_PROMPTS:
        raise RequestInvalid(name, f"`{name}` holds at most {MAX_PROMPTS} items.")
    first = value[0]
    if isinstance(first, int) and not isinstance(first, bool):
        return [_token_array(value, name)]
    counts = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if isinstance(item, str) and item:
            counts.append(-(-len(item) // CHARS_PER_TOKEN))
        elif isinstance(item, list):
            counts.append(_token_array(item, where))
        else:
            raise RequestInvalid(where, "Each item must be a non-empty string or token array.")
    return counts


def _prompts(body: dict, name: str) -> int:
    if body.get(name) is None:
        raise RequestInvalid(name, f"Missing required parameter: `{name}`.")
    return len(_batch(body[name], name))


def _embedding_tokens(value: Any) -> int:
    return sum(_batch(value, "input"))


def _estimate(raw_size: int | None, body: dict) -> int:
    if raw_size is None:
        # Only when the caller has no raw body (tests); the hot path passes its length.
        try:
            raw_size = len(orjson.dumps(body))
        except TypeError:  # a Python int wider than 64 bits: no JSON body we parsed holds one
            raw_size = len(json.dumps(body, default=str))
    return -(-raw_size // CHARS_PER_TOKEN)
