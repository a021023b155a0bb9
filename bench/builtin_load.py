"""The built-in load generator, for machines without wrk; also `python -m bench.builtin_load SPEC`.

SPEC is a JSON object (see `bench.loadgen.builtin_spec`). The harness runs it in its own process,
which sits on the load generator's core already. `connections` coroutines share one
aiohttp session with as many connections, each sending its next request as soon as the last
is answered, until `duration` seconds are over. Prints one JSON Sample. A Python client is slower
than wrk: beyond a few thousand requests per second it, not the server, may be the limit.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

import aiohttp


async def load(spec: dict) -> dict:
    """Run the load SPEC describes; the Sample's fields as a dict."""
    method, path, ids = spec["method"], spec["path"], spec["ids"]
    body = spec["body"].encode() or None
    headers = {"Content-Type": "application/json"} if body else {}
    if spec.get("authorization"):
        headers["Authorization"] = spec["authorization"]
    latencies: list[float] = []
    errors = 0
    random_id = "{id}" in path

    async def client(session: aiohttp.ClientSession, deadline: float) -> None:
        nonlocal errors
        while (start := time.perf_counter()) < deadline:
            target = path.replace("{id}", str(random.randint(1, ids))) if random_id else path
            try:
                async with session.request(method, target, data=body, headers=headers) as answer:
                    await answer.read()
                    ok = answer.status < 400
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    connector = aiohttp.TCPConnector(limit=spec["connections"])
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(spec["url"], connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        deadline = began + spec["duration"]
        await asyncio.gather(*(client(session, deadline) for _ in range(spec["connections"])))
        elapsed = time.perf_counter() - began
    return _summary(latencies, errors, elapsed)


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict:
    ordered = sorted(latencies) or [0.0]

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
        "requests": len(latencies),
        "errors": errors,
    }


def run(spec: dict) -> dict:
    """`load(spec)` on uvloop when there is one (a faster client), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:  # not on this platform
        return asyncio.run(load(spec))
    return uvloop.run(load(spec))


def main() -> None:
    print(json.dumps(run(json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
