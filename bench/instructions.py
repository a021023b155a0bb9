"""`python -m bench.instructions`: what one GET /notes/{id} on memory:// costs in CPU instructions,
counted by valgrind's callgrind, for this checkout and, in the same run, for other sides:
`--baseline REV` (the service as of a git revision) and `--variant access-log` (this checkout
with its access log on).

Requests a second on a shared 2-core VM differ by 10% and more from one run to the next; a count
of instructions repeats to within 1%, so it shows a change of 2%, and its dump shows where the
instructions go (`callgrind_annotate`). It counts work, not time (a cache miss costs nothing
here), and under valgrind the server runs some 50 times slower, so whatever the requests of one
millisecond or one batch share (the access log's timestamp and its 50 ms batches of lines)
weighs a little more than at full speed.

Each side is one server under `valgrind --tool=callgrind --instr-atstart=no`, given 100 notes,
warmed up, then counted over --requests GETs of those notes in a random order (the same on every
side), sent one after another on one keep-alive connection; instructions are counted only while
those are sent.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.baseline import export
from bench.processes import ROOT, Processes, free_port, stop_on_sigterm
from bench.suite import VARIANT_FLAGS, service_argv

NOTES = 100
WARMUP = 300
START_SECONDS = 300.0  # the most a server may take to start under valgrind (imports run slowly)
CONTROL_SECONDS = 60.0
OUTPUT = ROOT / "bench" / "results" / "instructions"


@dataclass(frozen=True)
class Side:
    name: str
    root: Path
    flags: tuple[str, ...] = ()


class Failed(Exception):
    """One side could not be counted; the message says why."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REV", help="also count the service as of this git revision")
    parser.add_argument("--variant", choices=["access-log"], help="also count this checkout with its access log on")
    parser.add_argument("--requests", type=int, default=2000, help="GETs counted per side (default 2,000)")
    parser.add_argument("--output", type=Path, default=OUTPUT, metavar="DIR",
                        help=f"where the callgrind dumps go (default {OUTPUT.relative_to(ROOT)})")
    options = parser.parse_args(argv)
    if options.requests < 1:
        parser.error("--requests must be at least 1")
    missing = [tool for tool in ("valgrind", "callgrind_control") if shutil.which(tool) is None]
    if missing:
        return _fail(f"{' and '.join(missing)} not found: install valgrind (Debian/Ubuntu: apt-get install valgrind)")
    stop_on_sigterm()
    processes = Processes()
    exported = tempfile.TemporaryDirectory(prefix="notes_instructions_baseline_")
    counted: dict[str, tuple[float, Path]] = {}
    try:
        options.output.mkdir(parents=True, exist_ok=True)
        sides = [Side("this checkout", ROOT)]
        if options.baseline:
            revision = export(options.baseline, Path(exported.name))
            sides.append(Side(f"baseline {revision.commit}", revision.root))
        if options.variant:
            sides.append(Side(f"this checkout, {options.variant}", ROOT, VARIANT_FLAGS[options.variant]))
        for side in sides:
            print(f"counting {side.name} ...", file=sys.stderr, flush=True)
            counted[side.name] = count(side, options.requests, processes, options.output)
    except KeyboardInterrupt:
        return _fail("interrupted: stopping the servers", 130)
    except (Failed, RuntimeError, OSError, ValueError, subprocess.CalledProcessError) as error:
        return _fail(str(error))
    finally:
        processes.stop_all()
        exported.cleanup()
    print(f"instructions per GET /notes/{{id}} on memory://, {options.requests:,} requests a side")
    ours = counted["this checkout"][0]
    for name, (per_request, dump) in counted.items():
        if name.startswith("baseline"):
            change = f"this checkout {100 * (ours / per_request - 1):+.1f}%"
        elif name != "this checkout":
            change = f"{100 * (per_request / ours - 1):+.1f}% on this checkout"
        else:
            change = ""
        print(f"  {name:<30} {per_request:>10,.0f}   {change:<32} {_shown(dump)}")
    return 0


def count(side: Side, requests: int, processes: Processes, output: Path) -> tuple[float, Path]:
    """Instructions per GET by id of one side's server, and the dump they were read from."""
    port = free_port()
    out = output / f"callgrind.{port}"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    label = side.name.replace(",", "").replace(" ", "-")
    server = processes.start_server(label, service_argv("memory://", port, side.flags), port, side.root,
                                    wrapper=valgrind, timeout=START_SECONDS)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CONTROL_SECONDS)
        ids = [_ask(connection, "POST", "/notes", json.dumps({
            "title": f"note {number}", "description": "a note to read back", "priority": 2,
        }))["id"] for number in range(NOTES)]
        order = random.Random(NOTES)  # the same order on every side
        for _ in range(WARMUP):
            _ask(connection, "GET", f"/notes/{order.choice(ids)}")
        _control("--instr=on", server.pid)
        for _ in range(requests):
            _ask(connection, "GET", f"/notes/{order.choice(ids)}")
        _control("--dump", server.pid)
        connection.close()
    except (http.client.HTTPException, OSError) as error:
        raise Failed(f"{side.name}: {error!r} from the server; its log: {processes.log_of(label)}") from None
    finally:
        processes.stop(server)
    dump = out.with_name(f"{out.name}.1")
    for line in dump.read_text(errors="replace").splitlines():
        if line.startswith(("summary: ", "totals: ")):
            return int(line.split()[1]) / requests, dump
    raise Failed(f"{dump}: no instruction total in it")


def _ask(connection: http.client.HTTPConnection, method: str, path: str, body: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    content = response.read()
    if response.status >= 400:
        raise Failed(f"{method} {path}: {response.status} {content[:300]!r}")
    return json.loads(content)


def _control(command: str, pid: int) -> None:
    try:
        subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True, text=True,
                       timeout=CONTROL_SECONDS)
    except subprocess.CalledProcessError as error:
        raise Failed(f"callgrind_control {command} {pid}: {(error.stderr or error.stdout).strip()}") from None
    except subprocess.TimeoutExpired:
        raise Failed(f"callgrind_control {command} {pid}: no answer in {CONTROL_SECONDS:.0f} s") from None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _fail(message: str, code: int = 1) -> int:
    print(f"bench.instructions: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
