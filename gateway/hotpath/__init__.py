"""The gateway's `/v1` request path, Django-free (import-linter, `pyproject.toml`).

One job per module, in the order a call meets them (details: `docs/ARCHITECTURE.md`):
`app` (ASGI entry, lifespan, errors) -> `runtime` (what a process holds) + `config` (the
environment, read once) -> `funnel` (the steps of one call) -> `auth`, `snapshots`, `validate`,
`routing`, `cache` -> `enforcer` (+ `budgets`, `refusals`, `admission`, `scripts`, `lua/`,
`resp`) -> `forward` | `relay` (+ `providers/`) -> `accounting`, `call`, `usage`.
`catalog` answers `GET /v1/models`; `http` is the raw ASGI I/O.
"""
