"""`make run`: serve the app with a Celery worker and beat beside it; Ctrl-C stops them all.

Each process is a child of this supervisor; one that dies is restarted with backoff
(`devtools/supervisor.py`: 0.5 s doubling to 30 s, reset after a minute up). On SIGINT/SIGTERM
every child is stopped, then the private Postgres/Redis that this `make run` started are
stopped too (services that were already running before it are left alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from alephant.env import BASE_DIR, load_dotenv
from devtools.procs import extra_processes  # simulator, ledger writer, demo traffic
from devtools.supervisor import Child, Supervisor


def processes(port: str) -> list[tuple[str, list[str]]]:
    py = sys.executable
    procs = [
        (
            "web",
            [
                py,
                "-m",
                "uvicorn",
                "alephant.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--no-access-log",
                "--lifespan",
                "on",
            ],
        ),
        (
            "worker",
            [py, "-m", "celery", "-A", "alephant", "worker", "-l", "warning", "--concurrency", "2"],
        ),
        (
            "beat",
            [
                py,
                "-m",
                "celery",
                "-A",
                "alephant",
                "beat",
                "-l",
                "warning",
                "--schedule",
                str(BASE_DIR / ".run" / "celerybeat-schedule"),
            ],
        ),
    ]
    return procs + extra_processes(py, port)


def mode_banner(environ: dict[str, str]) -> str:
    """What `make run` says first: development mode unless the environment says production."""
    module = environ.get("DJANGO_SETTINGS_MODULE", "alephant.settings.dev")
    production = module.endswith(".prod") or environ.get("ALEPHANT_ENV", "") in {
        "production",
        "prod",
    }
    if production:
        return "  Production settings (README 'Deploying to production')."
    debug = environ.get("DJANGO_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}
    return (
        "  DEVELOPMENT MODE: "
        + ("DEBUG on (error pages show code), " if debug else "")
        + "private upstreams "
        + ("allowed" if environ.get("ALEPHANT_ALLOW_PRIVATE_UPSTREAMS", "") == "1" else "refused")
        + f", sign-up {environ.get('ALEPHANT_SIGNUP', 'invite')}, local secrets from .env.\n"
        "  Not for production: see README 'Deploying to production'."
    )


def main() -> None:
    load_dotenv()
    port = os.environ.get("PORT", "8000")
    # Links in e-mails (invitations) point where this run listens, unless the site URL is set.
    os.environ.setdefault("ALEPHANT_SITE_URL", f"http://127.0.0.1:{port}")
    started_file = BASE_DIR / ".run" / "started_by_last_up.json"
    started = json.loads(started_file.read_text()) if started_file.exists() else []
    # The demo traffic may finish on its own; everything else is restarted when it exits.
    supervisor = Supervisor(
        [Child(name, cmd, restart=name != "traffic") for name, cmd in processes(port)],
        cwd=BASE_DIR,
    )
    print("\n" + mode_banner(dict(os.environ)))
    print(f"  Alephant is running on http://127.0.0.1:{port}/")
    print("  Demo login: owner@demo.alephant.dev / alephant-demo-2026 (finance: finance@demo...)")
    print(f"  Gateway: http://127.0.0.1:{port}/v1   API docs: http://127.0.0.1:{port}/api/docs/")
    print("  Ctrl-C stops everything.\n", flush=True)
    try:
        supervisor.run_until_signalled()
    finally:
        if started:  # only the services this `make run` started; others keep running
            services = str(BASE_DIR / "devtools" / "services.py")
            subprocess.run(
                [sys.executable, services, "down", "--only", ",".join(started)], cwd=BASE_DIR
            )


if __name__ == "__main__":
    main()
