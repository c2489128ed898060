"""Development tooling, not product code: no app package imports from here.

- `simulator.py`: upstream simulator (OpenAI, Anthropic, Gemini) (`python -m devtools.simulator`)
- `demo_traffic.py`: demo calls through the real gateway (`python -m devtools.demo_traffic`)
- `run.py`: the `make run` supervisor (`python -m devtools.run`)
- `procs.py`: the extra processes `make run` starts (simulator, ledger writer, demo traffic)
- `services.py`: `make services`, a local Postgres + Redis; standard library only, so it runs
  before the venv exists (`python3 devtools/services.py up`)
"""
