"""Extra processes for `make run` (see `devtools/run.py`): the upstream simulator and the
ledger writer. The demo's provider keys point at the simulator (`ALEPHANT_SIM_PORT`, default
9100), so the whole stack works offline."""

from __future__ import annotations

import os


def simulator_port() -> str:
    return os.environ.get("ALEPHANT_SIM_PORT", "9100")


def extra_processes(py: str, port: str) -> list[tuple[str, list[str]]]:
    return [
        (
            "simulator",
            [py, "-m", "devtools.simulator", "--host", "127.0.0.1", "--port", simulator_port()],
        ),
        ("ledger", [py, "manage.py", "ledger_writer"]),
        # Demo traffic through the real gateway (attribution issue); its exit stops nothing.
        (
            "traffic",
            [py, "-m", "devtools.demo_traffic", "--gateway", f"http://127.0.0.1:{port}/v1"],
        ),
    ]
