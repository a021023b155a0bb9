"""Ceilings: the least aiohttp code that does the service's work, one per store.

nostore (C0, for memory://) answers prebuilt JSON; pg (C1) and sqlite (C2) run the service's own
SQL on the same driver. They skip what the service adds around it (validation, problem details,
conditional requests, idempotency, dependency injection), so service/ceiling is what those cost.
Each runs alone: `python -m bench.ceilings.pg --port 8081 --database-url postgresql://...`.
"""
