"""The gateway's `/v1` request path, Django-free (import-linter, `pyproject.toml`).

Entry: `app.Gateway`. The call's path module by module: `docs/ARCHITECTURE.md`.
"""
