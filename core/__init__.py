"""Django-free domain rules shared by the gateway hot path and the Django apps.

Nothing here imports Django or any first-party app (import-linter enforces it): money, periods,
pricing lookups, Redis key names, key hashing and vault primitives are written once, here.
"""
