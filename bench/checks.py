"""The extra checks, on the SQL stores (memory:// cannot be filled with a million notes in bulk).

Owners: does one owner's page cost more in a store shared by many owners? p50 of an owner's first
page, and of a page sorted by priority, with 100 owners of 1,000 notes each in one store, over the
same page of the single owner of a store of as many notes, interleaved, one connection, a token on
every request (--auth required).

Scale: does a write get slower as the table grows? POST p50 on a store of 1,000,000 notes over
the same on 1,000, interleaved. RSS: does the service stream, or hold what it serves? A fresh
worker's peak RSS (VmHWM) while one client walks every page of the million.
"""

from __future__ import annotations

import dataclasses

import aiohttp
import orjson

from bench import data, plan
from bench.loadgen import Request
from bench.runner import Target, ratio
from bench.stores import issue_token, seed_sql, share_out
from bench.suite import Bench, say, while_serving
from bench.transfer import export_check, transfer_check

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
    say(f"[{adapter}] RSS check: walking every page of {bench.options.big_notes:,} notes")
    served = while_serving(bench, f"{adapter}-rss", big_url, walk)
    notes, pages = served.result
    return {
        "notes_walked": notes, "pages": pages, "page_size": WALK_PAGE, "seconds": round(served.seconds, 1),
        "rss_at_start_mb": round(served.rss_at_start_mb, 1), "peak_rss_mb": round(served.peak_rss_mb, 1),
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


OWNERS = 100
OWNERS_NOTES = 100_000
OWNER_PAGES = {"first page": f"/notes?limit={plan.PAGE}", "by priority": f"/notes?limit={plan.PAGE}&sort=-priority"}


def owners_check(bench: Bench, adapter: str) -> dict:
    alone_url, shared_url = bench.database(adapter, "alone"), bench.database(adapter, "shared")
    say(f"[{adapter}] owners check: {OWNERS_NOTES:,} notes of one owner, and of {OWNERS} owners")
    seed_sql(alone_url, OWNERS_NOTES, keep_rows=False)
    seed_sql(shared_url, OWNERS_NOTES, keep_rows=False)
    share_out(shared_url, OWNERS)
    alone_token, shared_token = issue_token(alone_url, "local"), issue_token(shared_url, "o7")
    alone, alone_base = bench.start_service(f"{adapter}-alone", alone_url, flags=("--auth", "required"))
    shared, shared_base = bench.start_service(f"{adapter}-shared", shared_url, flags=("--auth", "required"))
    load = dataclasses.replace(bench.load, connections=1, duration=bench.options.probe_duration)
    found: dict = {"owners": OWNERS, "notes": OWNERS_NOTES, "target": plan.TARGETS["owners_ratio"], "pages": {}}
    try:
        for name, path in OWNER_PAGES.items():
            in_shared, in_alone = load.compare(
                Target(shared_base, Request("GET", path, authorization=f"Bearer {shared_token}")),
                Target(alone_base, Request("GET", path, authorization=f"Bearer {alone_token}")),
            )
            found["pages"][name] = {
                "shared": in_shared.as_dict(), "alone": in_alone.as_dict(),
                "ratio": ratio(in_shared.p50_ms, in_alone.p50_ms),
                "errors": in_shared.errors + in_alone.errors,
            }
    finally:
        bench.processes.stop(alone)
        bench.processes.stop(shared)
        bench.databases.drop(alone_url)
        bench.databases.drop(shared_url)
    return found


def run_checks(bench: Bench, adapters: list[str]) -> dict:
    """The checks asked for, on each SQL adapter in `adapters`, with one big store each."""
    found: dict = {}
    if bench.options.transfer_check and {"sqlite", "postgresql"} <= set(adapters):
        found["transfer"] = transfer_check(bench)
    for adapter in (a for a in adapters if a != "memory"):
        if bench.options.transfer_check:
            found.setdefault("export", {})[adapter] = export_check(bench, adapter)
        if bench.options.owners_check:
            found.setdefault("owners", {})[adapter] = owners_check(bench, adapter)
        if not (bench.options.scale_check or bench.options.rss_check):
            continue
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
