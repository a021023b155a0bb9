"""The benchmark harness: the service against ceilings, on every adapter. Run `python -m bench`.

A ceiling (see `bench/ceilings/`) is the least aiohttp code doing the same work with the same
driver and SQL; the ratio service/ceiling says how much the architecture costs per request.
"""
