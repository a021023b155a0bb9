"""One adapter's benchmark: seed a store, start the service and its ceiling, run the plan."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import plan
from bench.baseline import Revision
from bench.options import Options
from bench.processes import ROOT, Processes, free_port, peak_rss_mb
from bench.runner import Load, Summary, Target, paired_ratio, ratio
from bench.stores import Databases, Seeded, issue_token, seed_http, seed_sql

CEILINGS = {
    "memory": "bench.ceilings.nostore",
    "sqlite": "bench.ceilings.sqlite",
    "postgresql": "bench.ceilings.pg",
}


_BEGAN = time.monotonic()


def say(text: str) -> None:
    """A progress line, stamped with the seconds since the harness started."""
    print(f"{time.monotonic() - _BEGAN:6.0f}s {text}" if text else "", flush=True)


def service_argv(url: str, port: int, flags: tuple[str, ...] = ()) -> list[str]:
    """The arguments (after the interpreter) of one worker process of the service on `url`,
    migrated already; `flags` override the defaults (a variant's)."""
    return [
        "-m", "app", "serve", "--database-url", url, "--port", str(port), "--no-migrate",
        "--workers", "1", "--log-level", "warning", "--cursor-secret", plan.CURSOR_SECRET, *flags,
    ]


@dataclass
class Bench:
    """What every part of a benchmark run shares."""

    options: Options
    processes: Processes
    databases: Databases
    load: Load
    baseline: Revision | None = None  # --baseline: an earlier service, measured beside this one

    def database(self, adapter: str, label: str) -> str:
        if adapter == "sqlite":
            return self.databases.sqlite(label)
        if adapter == "postgresql":
            return self.databases.postgres(label)
        return "memory://"

    def start_service(
        self, name: str, url: str, root: Path = ROOT, flags: tuple[str, ...] = ()
    ) -> tuple[subprocess.Popen, str]:
        """One worker process of the service (its code in `root`) on `url`, migrated already;
        `flags` override the defaults (a variant's)."""
        port = free_port()
        return self.processes.start_server(name, service_argv(url, port, flags), port, root), f"http://127.0.0.1:{port}"

    def start_ceiling(self, adapter: str, url: str, name: str = "ceiling") -> tuple[subprocess.Popen, str]:
        port = free_port()
        argv = ["-m", CEILINGS[adapter], "--port", str(port), "--database-url", url]
        return self.processes.start_server(f"{adapter}-{name}", argv, port), f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Served:
    """What a client's run against a fresh service gave, with the time it took and the service's
    peak RSS before and after it."""

    result: Any
    seconds: float
    rss_at_start_mb: float
    peak_rss_mb: float


def while_serving(bench: Bench, name: str, url: str, client: Callable[[str], Awaitable[Any]]) -> Served:
    """Start a service on `url`, run `client(base_url)` against it, stop it."""
    service, base = bench.start_service(name, url)
    try:
        at_start = peak_rss_mb(service.pid)
        began = time.monotonic()
        result = asyncio.run(client(base))
        seconds = time.monotonic() - began
        return Served(result, seconds, at_start, peak_rss_mb(service.pid))
    finally:
        bench.processes.stop(service)


def run_adapter(bench: Bench, adapter: str) -> dict:
    """Every scenario of one adapter, the service against its ceiling, plus the probes."""
    url = bench.database(adapter, "main")
    try:
        return _run_on(bench, adapter, url)
    finally:
        if adapter != "memory":
            bench.databases.drop(url)


def _run_on(bench: Bench, adapter: str, url: str) -> dict:
    options = bench.options
    count = options.memory_notes if adapter == "memory" else options.notes
    if adapter != "memory":
        say(f"[{adapter}] seeding {count:,} notes in bulk")
        seeded = seed_sql(url, count, keep_rows=not options.quick)
    with contextlib.ExitStack() as running:
        service, service_url = bench.start_service(f"{adapter}-service", url)
        running.callback(bench.processes.stop, service)
        urls = [service_url]
        baseline_ceiling = None
        if bench.baseline is not None:
            before_url = url
            if adapter != "memory":  # a store of its own, at its own schema, with the same notes
                before_url = bench.database(adapter, "baseline")
                running.callback(bench.databases.drop, before_url)
                say(f"[{adapter}] seeding the baseline's own store, migrated by its own code")
                seed_sql(before_url, count, keep_rows=False, root=bench.baseline.root)
                # Its ratio as it was: against the ceiling on its own store, whose schema (the
                # triggers of SQLite's, say) the ceiling's SQL runs into just as the baseline does.
                process, baseline_ceiling = bench.start_ceiling(adapter, before_url, "baseline-ceiling")
                running.callback(bench.processes.stop, process)
            before = bench.start_service(f"{adapter}-baseline", before_url, bench.baseline.root)
            running.callback(bench.processes.stop, before[0])
            urls.append(before[1])
        variant = None
        if bench.options.variant is not None:
            variant = _start_variant(bench, adapter, url)
            running.callback(bench.processes.stop, variant.process)
        if adapter == "memory":  # every process its own store; the plan uses the service's ids
            say(f"[{adapter}] seeding {count:,} notes through POST /notes")
            seeded = asyncio.run(seed_http(service_url, count))
            for other_url in urls[1:] + ([variant.url] if variant else []):
                asyncio.run(seed_http(other_url, count))
        ceiling, ceiling_url = bench.start_ceiling(adapter, url)
        running.callback(bench.processes.stop, ceiling)
        result = _run_plan(bench, adapter, seeded, Urls(service_url, ceiling_url, urls[1:], variant, baseline_ceiling))
        result["service_peak_rss_mb"] = round(peak_rss_mb(service.pid), 1)
    seeded_by = "http" if adapter == "memory" else "bulk"
    return {"notes": count, "seeded": seeded_by, "ceiling": CEILINGS[adapter], **result}


@dataclass(frozen=True)
class Variant:
    """--variant: this service once more, with other flags, and what its requests carry."""

    process: subprocess.Popen
    url: str
    authorization: str | None


VARIANT_FLAGS = {"access-log": ("--log-level", "info"), "auth": ("--auth", "required")}


def _start_variant(bench: Bench, adapter: str, url: str) -> Variant:
    name = bench.options.variant
    assert name is not None
    flags = VARIANT_FLAGS[name]
    authorization = None
    if name == "auth" and adapter != "memory":  # a token of `local`, whose notes are seeded
        authorization = f"Bearer {issue_token(url, 'local')}"
    if name == "auth" and adapter == "memory":  # its own store: a token from its own /tokens
        flags = ("--auth", "local")
    process, variant_url = bench.start_service(f"{adapter}-{name}", url, flags=flags)
    if name == "auth" and adapter == "memory":
        authorization = f"Bearer {asyncio.run(_token_over_http(variant_url))}"
    say(f"[{adapter}] variant {name}: {' '.join(flags)}" + (", a token on every request" if authorization else ""))
    return Variant(process, variant_url, authorization)


async def _token_over_http(base_url: str) -> str:
    async with aiohttp.ClientSession() as session, session.post(f"{base_url}/tokens", json={"label": "bench"}) as made:
        made.raise_for_status()
        return (await made.json())["token"]


@dataclass(frozen=True)
class Urls:
    service: str
    ceiling: str
    baseline: list[str]  # empty, or the --baseline service
    variant: Variant | None = None
    baseline_ceiling: str | None = None  # the ceiling on the baseline's own store (SQL stores)


def _run_plan(bench: Bench, adapter: str, seeded: Seeded, urls: Urls) -> dict:
    """Reads, then the probes, then writes (which change what the reads would see)."""
    quick = bench.options.quick
    scenarios = {}
    for scenario in plan.read_scenarios(seeded, quick):
        scenarios[scenario.name] = _compare(bench, adapter, scenario, urls)
    probes = {} if quick else _probes(bench, adapter, seeded, urls.service)
    for scenario in plan.write_scenarios(seeded, quick):
        scenarios[scenario.name] = _compare(bench, adapter, scenario, urls)
    return {"scenarios": scenarios, "probes": probes, "feed": _feed(adapter, urls.service)}


def _feed(adapter: str, service: str) -> dict:
    """GET /changes from the start of the log to its end, one client, pages of 1,000: the rate
    a follower that is behind catches up at (the seeded notes and every write made above)."""

    async def read() -> tuple[int, float]:
        count, since = 0, None
        async with aiohttp.ClientSession() as session:
            began = time.perf_counter()
            while True:
                params = {"limit": "1000", **({"since": since} if since else {})}
                async with session.get(f"{service}/changes", params=params) as response:
                    response.raise_for_status()
                    page = await response.json(loads=orjson.loads)
                if not page["changes"]:
                    return count, time.perf_counter() - began
                count, since = count + len(page["changes"]), page["next"]

    count, seconds = asyncio.run(read())
    rate = count / seconds if seconds else 0.0
    say(f"[{adapter}] the feed: {count:,} changes in {seconds:.2f} s, {rate:,.0f} changes/s")
    return {"changes": count, "seconds": round(seconds, 3), "changes_per_s": round(rate)}


def _compare(bench: Bench, adapter: str, scenario: plan.Scenario, urls: Urls) -> dict:
    sides = "service vs ceiling"
    if urls.baseline:
        sides = "service, ceiling, baseline" + (" and its ceiling" if urls.baseline_ceiling else "")
    say(f"[{adapter}] {scenario.name}: {sides}, {bench.load.runs} runs each")
    targets = [Target(urls.service, scenario.service), Target(urls.ceiling, scenario.ceiling)]
    targets += [Target(url, scenario.service) for url in urls.baseline]
    if urls.baseline_ceiling is not None:
        targets.append(Target(urls.baseline_ceiling, scenario.ceiling))
    if urls.variant is not None:
        request = dataclasses.replace(scenario.service, authorization=urls.variant.authorization)
        targets.append(Target(urls.variant.url, request))
    ours, best, *others = bench.load.compare(*targets)
    _warn_errors(adapter, scenario.name, ours, best, *others)
    found = {"service": ours.as_dict(), "ceiling": best.as_dict()}
    found["ratio"] = paired_ratio(ours, best)
    if urls.variant is not None:
        variant = others.pop()
        found |= {"variant": variant.as_dict(), "variant_ratio": paired_ratio(variant, best)}
    if urls.baseline_ceiling is not None:
        baseline_best = others.pop()
        found["baseline_ceiling"] = baseline_best.as_dict()
    else:
        baseline_best = best
    for summary in others:
        found |= {
            "baseline": summary.as_dict(), "baseline_ratio": paired_ratio(summary, baseline_best),
            "baseline_ratio_to_todays_ceiling": paired_ratio(summary, best),
            "rps_over_baseline": paired_ratio(ours, summary),
        }
    return found


def _probes(bench: Bench, adapter: str, seeded: Seeded, service: str) -> dict:
    """Latency, one request at a time (see bench.plan)."""
    load = dataclasses.replace(bench.load, connections=1, duration=bench.options.probe_duration)
    found: dict = {}
    for probe in plan.probes(seeded):
        say(f"[{adapter}] probe {probe.name}")
        if probe.baseline is None:
            alone = load.measure(Target(service, probe.request))
            _warn_errors(adapter, probe.name, alone)
            found[probe.name] = {"service": alone.as_dict(), "p50_ms": round(alone.p50_ms, 3)}
            continue
        depth, first = load.compare(Target(service, probe.request), Target(service, probe.baseline))
        _warn_errors(adapter, probe.name, depth, first)
        found[probe.name] = {
            "depth": depth.as_dict(), "first": first.as_dict(),
            "ratio": ratio(depth.p50_ms, first.p50_ms),
        }
    return found


def _warn_errors(adapter: str, name: str, *summaries: Summary) -> None:
    for summary in summaries:
        total = sum(s.requests for s in summary.runs)
        if summary.errors:
            say(f"[{adapter}] warning: {name}: {summary.errors} of {total} requests failed")
