"""`python -m bench.instructions`: what one GET /notes/{id} on memory:// costs in CPU instructions,
counted by valgrind's callgrind, for this checkout and, in the same run, for other sides:
`--baseline REV` (the service as of a git revision) and `--variant access-log` (this service with
its access log on).

Requests a second on a shared 2-core VM differ by 10% and more from one run to the next; a count
of instructions is the same to about 0.2% whatever else the machine does, so it shows a change of
1% that the throughput runs cannot. It counts work, not time (a cache miss costs nothing here),
and under valgrind the server runs some 50 times slower, which makes a little more of whatever is
shared by the requests of one millisecond or one batch (the access log's timestamp and its 50 ms
batches of lines).

Each side is one server under `valgrind --tool=callgrind --instr-atstart=no`, seeded with notes,
warmed up, then counted over --requests GETs of random notes sent one after another on one
keep-alive connection; instructions are counted only while those are sent.
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.baseline import export
from bench.plan import CURSOR_SECRET
from bench.processes import ROOT, free_port, wait_http

NOTES = 100
WARMUP = 300
START_SECONDS = 300.0  # a server's start under valgrind (imports run some 50 times slower)


@dataclass(frozen=True)
class Side:
    name: str
    root: Path
    flags: tuple[str, ...] = ()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="also count the service as of this git revision")
    parser.add_argument("--variant", choices=["access-log"], help="also count this service with its access log on")
    parser.add_argument("--requests", type=int, default=2000, help="GETs counted per side (default 2,000)")
    options = parser.parse_args(argv)
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        print(f"bench.instructions: {' and '.join(missing)} not found: install valgrind"
              " (Debian/Ubuntu: apt-get install valgrind)", file=sys.stderr)
        return 2
    if options.requests < 1:
        parser.error("--requests must be at least 1")
    with tempfile.TemporaryDirectory(prefix="notes_instructions_") as scratch:
        sides = [Side("today", ROOT)]
        if options.baseline:
            into = Path(scratch, "baseline")
            into.mkdir()
            try:
                revision = export(options.baseline, into)
            except (RuntimeError, subprocess.CalledProcessError) as error:
                print(f"bench.instructions: --baseline {options.baseline}: {error}", file=sys.stderr)
                return 2
            sides.append(Side(f"baseline {revision.commit}", revision.root))
        if options.variant == "access-log":
            sides.append(Side("today, access log on", ROOT, ("--log-level", "info")))
        counted = {}
        for side in sides:
            print(f"counting {side.name} ...", file=sys.stderr, flush=True)
            try:
                counted[side.name] = count(side, options.requests, Path(scratch))
            except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
                print(f"bench.instructions: {side.name}: {error}", file=sys.stderr)
                return 1
    today = counted["today"]
    print(f"\ninstructions per GET /notes/{{id}} on memory://, {options.requests:,} requests a side")
    for name, per_request in counted.items():
        change = "" if name == "today" else f"   today {100 * (today / per_request - 1):+.1f}%" \
            if name.startswith("baseline") else f"   {100 * (per_request / today - 1):+.1f}% on today"
        print(f"  {name:<24} {per_request:>10,.0f}{change}")
    return 0


def count(side: Side, requests: int, scratch: Path) -> float:
    """Instructions per GET by id of one side's server."""
    port = free_port()
    out = scratch / f"callgrind.{port}"
    argv = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "app", "serve", "--database-url", "memory://", "--port", str(port),
        "--no-migrate", "--workers", "1", "--log-level", "warning", "--cursor-secret", CURSOR_SECRET,
        *side.flags,
    ]
    with open(scratch / f"server.{port}.log", "wb") as log:
        server = subprocess.Popen(argv, cwd=side.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", server, timeout=START_SECONDS)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for number in range(1, NOTES + 1):
            body = f'{{"title":"note {number}","description":"a note to read back","priority":2}}'
            _ask(connection, "POST", "/notes", body)
        ids = random.Random(NOTES)  # the same notes in the same order on every side
        for _ in range(WARMUP):
            _ask(connection, "GET", f"/notes/{ids.randint(1, NOTES)}")
        _control("--instr=on", server.pid)
        for _ in range(requests):
            _ask(connection, "GET", f"/notes/{ids.randint(1, NOTES)}")
        _control("--dump", server.pid)
        connection.close()
    finally:
        _stop(server)
    dump = out.with_name(f"{out.name}.1")
    totals = re.search(rb"^(?:summary|totals): (\d+)", dump.read_bytes(), re.MULTILINE)
    if totals is None:
        raise RuntimeError(f"{dump}: no instruction total")
    return int(totals[1]) / requests


def _ask(connection: http.client.HTTPConnection, method: str, path: str, body: str | None = None) -> None:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status >= 400:
        raise RuntimeError(f"{method} {path}: {response.status}")


def _control(command: str, pid: int) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True)


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    sys.exit(main())
