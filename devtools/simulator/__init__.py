"""Upstream simulator: a real HTTP server that speaks like OpenAI, Anthropic and Gemini.

    python -m devtools.simulator --port 9100 [--latency-ms 0] [--fail-rate 0]

Used by tests, the demo (`make run`) and `make bench`. Replies are deterministic: the text is
chosen from a fixed vocabulary by a hash of the input, one word = one output token, and the
input token count is derived from the input (`count_tokens`).

Faults are injected per request, either by headers (when calling the simulator directly) or by
directives inside the last message's text (so they survive a proxy that drops unknown headers
and a translation to another provider's format):

    x-sim-fail / [[sim:fail=500]]     429 | 500 | 503 | 400 | timeout | malformed | truncate
    x-sim-fail-times / [[sim:times=1]] fail only the first N requests carrying that directive
    x-sim-latency-ms / [[sim:latency=50]]   delay before answering (and between stream chunks)
    x-sim-tokens / [[sim:tokens=40]]   number of output tokens (default 12, capped by max_tokens)
    [[sim:cached=100]]  cached input tokens reported;  [[sim:reasoning=10]] reasoning tokens

`GET /_sim/stats` returns request counts (total, per path, per model) and the last request's
auth header and body; `POST /_sim/reset` zeroes them.
"""
