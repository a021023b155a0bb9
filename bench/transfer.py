"""The transfer check (`--transfer-check`): `notes-api copy` of a million notes from SQLite to
PostgreSQL and back, each timed with the peak RSS of its process, beside a ceiling measured in the
same run: the same rows written straight through the driver's bulk path (`executemany` in one
transaction; asyncpg's `COPY`) by the harness's seeding, which neither reads a store nor checks
anything; both on every core, not on the one the harness pins itself to. And `GET /export` of
100,000 notes, streamed by a client, with the server's peak RSS before and after.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import aiohttp

from bench import plan
from bench.processes import ROOT, USABLE_CORES, peak_rss_mb
from bench.stores import seed_sql
from bench.suite import Bench, say, while_serving

EXPORT_NOTES = 100_000


def _copy(source: str, target: str) -> dict:
    """`notes-api copy` in a process of its own: seconds, and its peak RSS (VmHWM, read every
    0.1 s while it runs: wait4's ru_maxrss would count the harness's own memory, which the child
    shares between fork and exec)."""
    began = time.monotonic()
    with tempfile.TemporaryFile("w+") as said_file:
        process = subprocess.Popen([sys.executable, "-m", "app", "copy", "--from", source, "--to", target],
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=said_file, text=True)
        peak = 0.0
        while process.poll() is None:
            with contextlib.suppress(OSError, RuntimeError):  # gone between poll and read
                peak = max(peak, peak_rss_mb(process.pid))
            time.sleep(0.1)
        seconds = time.monotonic() - began
        said_file.seek(0)
        said = said_file.read().strip().splitlines()
    if process.returncode != 0 or not said or "checksums match" not in said[-1]:
        raise RuntimeError(f"copy {source} -> {target} failed: {said[-1:] or process.returncode}")
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak, 1), "said": said[-1]}


def _seeded(url: str, notes: int) -> float:
    began = time.monotonic()
    seed_sql(url, notes, keep_rows=False)
    return time.monotonic() - began


@contextlib.contextmanager
def _every_core() -> Iterator[None]:
    """The harness runs pinned to the load generator's core, and a child inherits that: a copy
    and its ceilings get every core the machine gives, as an operator's would."""
    pinned_to = os.sched_getaffinity(0)
    os.sched_setaffinity(0, USABLE_CORES)
    try:
        yield
    finally:
        os.sched_setaffinity(0, pinned_to)


def transfer_check(bench: Bench) -> dict:
    with _every_core():
        return _transfer_check(bench)


def _transfer_check(bench: Bench) -> dict:
    notes = bench.options.big_notes
    source, target, back = (bench.database("sqlite", "copy-source"), bench.database("postgresql", "copy-target"),
                            bench.database("sqlite", "copy-back"))
    ceiling_pg = bench.database("postgresql", "copy-ceiling")
    try:
        say(f"[transfer] seeding {notes:,} notes into SQLite and PostgreSQL through the drivers (the ceilings)")
        ceilings = {"sqlite": _seeded(source, notes), "postgresql": _seeded(ceiling_pg, notes)}
        bench.databases.drop(ceiling_pg)
        found: dict = {"notes": notes, "target_s": plan.TARGETS["copy_s"], "target_mb": plan.TARGETS["copy_rss_mb"]}
        for name, (frm, to, kind) in {"sqlite->postgresql": (source, target, "postgresql"),
                                      "postgresql->sqlite": (target, back, "sqlite")}.items():
            say(f"[transfer] notes-api copy {name}, {notes:,} notes")
            copied = _copy(frm, to)
            copied["notes_per_s"] = round(notes / copied["seconds"])
            copied["ceiling_s"] = round(ceilings[kind], 1)
            copied["ratio"] = round(ceilings[kind] / copied["seconds"], 2)
            found[name] = copied
    finally:
        for url in (source, target, back, ceiling_pg):
            bench.databases.drop(url)
    return found


async def _download(base_url: str) -> tuple[int, int]:
    lines = size = 0
    # the file as it is: aiohttp's client asks for gzip by default, which the server then spends
    # its time on (README: both rates)
    identity = {"Accept-Encoding": "identity"}
    async with aiohttp.ClientSession(base_url) as session, session.get("/export", headers=identity) as response:
        if response.status != 200:
            raise RuntimeError(f"GET /export gave {response.status}")
        async for chunk in response.content.iter_chunked(1 << 16):
            lines += chunk.count(b"\n")
            size += len(chunk)
    return lines, size


def export_check(bench: Bench, adapter: str) -> dict:
    url = bench.database(adapter, "export")
    seed_sql(url, EXPORT_NOTES, keep_rows=False)
    say(f"[{adapter}] export check: GET /export of {EXPORT_NOTES:,} notes")
    try:
        served = while_serving(bench, f"{adapter}-export", url, _download)
    finally:
        bench.databases.drop(url)
    lines, size = served.result
    if lines != EXPORT_NOTES + 3:  # header, the owner local, the notes, the end
        raise RuntimeError(f"GET /export gave {lines} lines for {EXPORT_NOTES} notes")
    return {"notes": EXPORT_NOTES, "seconds": round(served.seconds, 2),
            "notes_per_s": round(EXPORT_NOTES / served.seconds), "megabytes": round(size / 2**20, 1),
            "rss_at_start_mb": round(served.rss_at_start_mb, 1), "peak_rss_mb": round(served.peak_rss_mb, 1),
            "target_notes_per_s": plan.TARGETS["export_notes_per_s"]}
