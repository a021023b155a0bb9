"""Load generators: wrk with bench/wrk.lua when it is installed, else bench/builtin_load.py.

Both run pinned to LOAD_CORE, keep `connections` requests in flight for `duration` seconds, and
report requests per second, p50 and p99 latency, and the number of failed requests.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import builtin_load
from bench.processes import LOAD_CORE, pinned

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass(frozen=True)
class Request:
    """What each request of a run is: `{id}` in `path` becomes a random id in 1..ids."""

    method: str
    path: str
    ids: int = 1
    body: bytes | None = None
    authorization: str | None = None  # the Authorization header, when the service needs a token


@dataclass(frozen=True)
class Sample:
    """One run's result."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # answers other than 2xx/3xx, and socket errors

    def as_dict(self) -> dict:
        return asdict(self)


def default_kind() -> str:
    return "wrk" if shutil.which("wrk") else "builtin"


def describe(kind: str) -> str:
    if kind != "wrk":
        return "builtin (bench/builtin_load.py, aiohttp client)"
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout + done.stderr).splitlines()[0].split(" [")[0]


def run(kind: str, base_url: str, request: Request, duration: float, connections: int) -> Sample:
    if kind == "wrk":
        return _run_wrk(base_url, request, duration, connections)
    return _run_builtin(base_url, request, duration, connections)


def _run_wrk(base_url: str, request: Request, duration: float, connections: int) -> Sample:
    seconds = max(1, math.ceil(duration))  # wrk takes whole seconds
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(WRK_SCRIPT), base_url,
    ]
    env = {
        **os.environ, "BENCH_METHOD": request.method, "BENCH_PATH": request.path,
        "BENCH_IDS": str(request.ids), "BENCH_BODY": (request.body or b"").decode(),
        "BENCH_AUTHORIZATION": request.authorization or "",
    }
    done = subprocess.run(pinned(argv, LOAD_CORE), capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def parse_wrk(output: str) -> Sample:
    """The numbers of `wrk --latency` output."""

    def number(pattern: str) -> float:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return float(match.group(1))

    def percentile(p: int) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"unexpected wrk output (no {p}% line):\n{output}")
        return float(match.group(1)) * _UNITS_MS[match.group(2)]

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return Sample(
        rps=number(r"^Requests/sec:\s+([\d.]+)"),
        p50_ms=percentile(50),
        p99_ms=percentile(99),
        requests=int(number(r"^\s+(\d+) requests in")),
        errors=errors,
    )


def builtin_spec(base_url: str, request: Request, duration: float, connections: int) -> dict:
    """The argument of bench/builtin_load.py."""
    return {
        "url": base_url, "method": request.method, "path": request.path, "ids": request.ids,
        "body": (request.body or b"").decode(), "duration": duration, "connections": connections,
        "authorization": request.authorization or "",
    }


def _run_builtin(base_url: str, request: Request, duration: float, connections: int) -> Sample:
    """In this process (pinned to LOAD_CORE by bench.__main__): no interpreter to start per run."""
    return Sample(**builtin_load.run(builtin_spec(base_url, request, duration, connections)))
