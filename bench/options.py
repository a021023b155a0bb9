"""The harness's command line: `python -m bench [--quick] [--scale-check] [--rss-check] ...`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen

ADAPTERS = ("memory", "sqlite", "postgresql")
RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES = os.environ.get("NOTES_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass(frozen=True)
class Options:
    notes: int
    memory_notes: int  # memory:// is filled over HTTP, so with fewer notes
    runs: int
    duration: float  # seconds per measured run
    probe_duration: float  # seconds per run of a one-connection latency probe
    warmup: float  # seconds of warm-up per target before its runs
    connections: int
    loadgen: str  # "wrk" or "builtin"
    adapters: tuple[str, ...]
    postgres_url: str  # a server where notes_bench_* databases may be created and dropped
    quick: bool
    baseline: str | None  # a git revision whose service is measured beside this one
    variant: str | None  # "access-log" or "auth": this service once more, so, beside the plain one
    scale_check: bool
    rss_check: bool
    owners_check: bool
    transfer_check: bool
    big_notes: int  # notes in the scale and RSS checks' store
    output: Path
    chart: Path | None  # beside `output`; none in quick mode


VARIANTS = {"access-log": "the access log on (--log-level info)",
            "auth": "--auth required, a valid token on every request"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    add = p.add_argument
    add("--quick", action="store_true", help="a reduced set in under 90 s; writes quick.json")
    add("--notes", type=int, help="notes per SQL store (default 100,000; quick 20,000)")
    add("--memory-notes", type=int, help="notes POSTed into memory:// (default 20,000)")
    add("--runs", type=int, default=3, help="measured runs per side (default 3)")
    add("--duration", type=float, help="seconds per run (default 5; quick 1)")
    add("--warmup", type=float, help="warm-up seconds per side (default 1; quick 0.3)")
    add("--connections", type=int, default=32, help="requests in flight (default 32)")
    add("--loadgen", choices=("auto", "wrk", "builtin"), default="auto",
        help="wrk when installed (auto), or the built-in Python one")
    add("--adapters", default=",".join(ADAPTERS), help="a comma-separated subset")
    add("--postgres-url", default=POSTGRES, help="server [env NOTES_BENCH_POSTGRES_URL]")
    add("--baseline", metavar="REV",
        help="also run the service as of this git revision (a tag, a branch, a commit), in the"
        " same rounds, and report its ratios beside today's: a before/after in one run")
    add("--variant", choices=tuple(VARIANTS),
        help="also run this service with the access log on (access-log), or with --auth required and"
        " a token on every request (auth; memory: --auth local, with a token), in the same rounds")
    add("--scale-check", action="store_true", help="POST p50 at 1,000 vs 1,000,000 notes")
    add("--rss-check", action="store_true", help="peak RSS while walking 1,000,000 notes")
    add("--owners-check", action="store_true",
        help="an owner's page p50 among 100 owners of 100,000 notes vs a single owner's")
    add("--transfer-check", action="store_true",
        help="notes-api copy of --big-notes notes SQLite -> PostgreSQL and back, and GET /export of 100,000")
    add("--big-notes", type=int, default=1_000_000, help="notes in the checks' big store")
    add("--output", type=Path, help="results JSON (default bench/results/latest.json)")
    return p


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = _parser()
    args = parser.parse_args(argv)
    adapters = tuple(a.strip() for a in args.adapters.split(",") if a.strip())
    unknown = set(adapters) - set(ADAPTERS)
    if unknown:
        parser.error(f"unknown adapters {sorted(unknown)}; choose from {', '.join(ADAPTERS)}")
    kind = loadgen.default_kind() if args.loadgen == "auto" else args.loadgen
    if kind == "wrk" and loadgen.default_kind() != "wrk":
        parser.error("wrk is not installed: `make bench-tools`, or --loadgen builtin")
    quick = args.quick
    if quick and (args.scale_check or args.rss_check):
        print("note: --scale-check and --rss-check are not run with --quick")
    duration = args.duration or (1.0 if quick else 5.0)
    output = args.output or RESULTS / ("quick.json" if quick else "latest.json")
    return Options(
        notes=args.notes or (20_000 if quick else 100_000),
        memory_notes=args.memory_notes or (10_000 if quick else 20_000),
        runs=args.runs,
        duration=duration,
        probe_duration=max(1.0, duration / 2.5),
        warmup=args.warmup if args.warmup is not None else (0.3 if quick else 1.0),
        connections=args.connections,
        loadgen=kind,
        adapters=adapters,
        postgres_url=args.postgres_url,
        quick=quick,
        baseline=args.baseline,
        variant=args.variant,
        scale_check=args.scale_check and not quick,
        rss_check=args.rss_check and not quick,
        owners_check=args.owners_check,
        transfer_check=args.transfer_check,
        big_notes=args.big_notes,
        output=output,
        chart=None if quick else output.with_name("ratios.png"),
    )
