"""`python -m bench`: run the benchmark, print the tables, write bench/results/.

Whatever happens (an error, Ctrl-C, SIGTERM), every process it started is stopped, and every
database and SQLite file it made is removed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench import chart, plan, report
from bench import options as cli
from bench.baseline import Revision, export
from bench.checks import run_checks
from bench.processes import LOAD_CORE, Processes, pinning, stop_on_sigterm
from bench.runner import Load
from bench.stores import Databases
from bench.suite import Bench, run_adapter, say


def _postgres_version(options: cli.Options, databases: Databases) -> tuple[str | None, str | None]:
    """(version, None), or (None, why PostgreSQL is skipped); (None, None) when not asked for."""
    if "postgresql" not in options.adapters:
        return None, None
    try:
        return databases.postgres_version(), None
    except RuntimeError as error:
        return None, str(error)


def run(
    options: cli.Options, processes: Processes, databases: Databases, baseline: Revision | None
) -> dict:
    version, unreachable = _postgres_version(options, databases)
    results: dict = {
        "machine": report.machine(options, version),
        "settings": report.settings(options, baseline),
        "targets": plan.TARGETS,
        "adapters": {},
    }
    load = Load(
        options.loadgen, options.runs, options.duration, options.warmup, options.connections
    )
    bench = Bench(options, processes, databases, load, baseline)
    for adapter in options.adapters:
        if adapter == "postgresql" and unreachable:
            say(f"[postgresql] skipped: {unreachable}")
            results["adapters"][adapter] = {"skipped": unreachable}
            continue
        try:
            results["adapters"][adapter] = run_adapter(bench, adapter)
        except RuntimeError as error:  # a server that would not start, a failed load run
            say(f"[{adapter}] failed: {error}")
            results["adapters"][adapter] = {"failed": str(error)}
    if options.scale_check or options.rss_check or options.owners_check or options.transfer_check:
        usable = [a for a in options.adapters if not (a == "postgresql" and unreachable)]
        results["checks"] = run_checks(bench, usable)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    options = cli.parse(argv)
    if pinning():
        os.sched_setaffinity(0, {LOAD_CORE})  # the harness's own client work, off the server's core
    stop_on_sigterm()
    began = time.monotonic()
    processes, databases = Processes(), Databases(options.postgres_url)
    exported = tempfile.TemporaryDirectory(prefix="notes_bench_baseline_")
    try:
        baseline = None
        if options.baseline is not None:
            baseline = export(options.baseline, Path(exported.name))
            say(f"baseline: {baseline.name} ({baseline.commit})")
        results = run(options, processes, databases, baseline)
    except KeyboardInterrupt:
        say("interrupted: stopping servers and removing databases")
        return 130
    except RuntimeError as error:  # a baseline git cannot export
        say(f"failed: {error}")
        return 1
    finally:
        processes.stop_all()
        databases.drop_all()
        exported.cleanup()
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    report.write_json(options.output, results)
    if options.chart is not None:
        chart.draw(results, options.chart)
    print()
    print(report.tables(results))
    print(f"\n{results['elapsed_s']:.0f} s; results in {options.output}"
          + (f", chart in {options.chart}" if options.chart else ""))
    failed = any("failed" in found for found in results["adapters"].values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
