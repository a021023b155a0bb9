"""The extra checks, on the SQL stores (memory:// cannot be filled with a million notes in bulk).

Scale: does a write get slower as the table grows? POST p50 on a store of 1,000,000 notes over
the same on 1,000, interleaved. RSS: does the service stream, or hold what it serves? A fresh
worker's peak RSS (VmHWM) while one client walks every page of the million.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson

from bench import data, plan
from bench.loadgen import Request
from bench.processes import peak_rss_mb
from bench.runner import Target, ratio
from bench.stores import seed_sql
from bench.suite import Bench, say

SMALL = 1_000
WALK_PAGE = 500  # the largest page the API allows: the fewest requests for the walk


def big_store(bench: Bench, adapter: str) -> str:
    say(f"[{adapter}] seeding {bench.options.big_notes:,} notes in bulk for the checks")
    url = bench.database(adapter, "big")
    seed_sql(url, bench.options.big_notes, keep_rows=False)
    return url


def scale_check(bench: Bench, adapter: str, big_url: str) -> dict:
    small_url = bench.database(adapter, "small")
    seed_sql(small_url, SMALL, keep_rows=False)
    small, small_base = bench.start_service(f"{adapter}-small", small_url)
    big, big_base = bench.start_service(f"{adapter}-big", big_url)
    post = Request("POST", "/notes", body=data.request_body())
    say(f"[{adapter}] scale check: POST at {bench.options.big_notes:,} vs {SMALL:,} notes")
    try:
        at_big, at_small = bench.load.compare(Target(big_base, post), Target(small_base, post))
    finally:
        bench.processes.stop(small)
        bench.processes.stop(big)
    bench.databases.drop(small_url)
    return {
        "small_notes": SMALL, "big_notes": bench.options.big_notes,
        "small": at_small.as_dict(), "big": at_big.as_dict(),
        "ratio": ratio(at_big.p50_ms, at_small.p50_ms), "target": plan.TARGETS["scale_ratio"],
    }


def rss_check(bench: Bench, adapter: str, big_url: str) -> dict:
    service, base = bench.start_service(f"{adapter}-rss", big_url)
    try:
        at_start = peak_rss_mb(service.pid)
        say(f"[{adapter}] RSS check: walking every page of {bench.options.big_notes:,} notes")
        began = time.monotonic()
        notes, pages = asyncio.run(walk(base))
        seconds = time.monotonic() - began
        peak = peak_rss_mb(service.pid)
    finally:
        bench.processes.stop(service)
    return {
        "notes_walked": notes, "pages": pages, "page_size": WALK_PAGE, "seconds": round(seconds, 1),
        "rss_at_start_mb": round(at_start, 1), "peak_rss_mb": round(peak, 1),
        "target_mb": plan.TARGETS["rss_mb"],
    }


async def walk(base_url: str) -> tuple[int, int]:
    """Follow next_cursor from the first page to the last; the notes and pages seen."""
    notes = pages = 0
    path = f"/notes?limit={WALK_PAGE}"
    async with aiohttp.ClientSession(base_url) as session:
        while path:
            async with session.get(path) as response:
                if response.status != 200:
                    raise RuntimeError(f"walk: GET {path} gave {response.status}")
                page = orjson.loads(await response.read())
            notes, pages = notes + len(page["notes"]), pages + 1
            cursor = page["next_cursor"]
            path = f"/notes?limit={WALK_PAGE}&cursor={cursor}" if cursor else ""
    return notes, pages


def run_checks(bench: Bench, adapters: list[str]) -> dict:
    """The checks asked for, on each SQL adapter in `adapters`, with one big store each."""
    found: dict = {}
    for adapter in (a for a in adapters if a != "memory"):
        big_url = big_store(bench, adapter)
        try:
            if bench.options.scale_check:
                found.setdefault("scale", {})[adapter] = scale_check(bench, adapter, big_url)
            if bench.options.rss_check:
                found.setdefault("rss", {})[adapter] = rss_check(bench, adapter, big_url)
        finally:
            bench.databases.drop(big_url)
    if "memory" in adapters:
        found["memory"] = "skipped: memory:// is filled over HTTP, too slowly for a million notes"
    return found
