"""The results: tables on the terminal, a JSON file, and the machine they were measured on."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sqlite3
from importlib import metadata
from pathlib import Path

from bench import data, loadgen, plan
from bench.baseline import Revision
from bench.options import VARIANTS, Options
from bench.processes import LOAD_CORE, SERVER_CORE, USABLE_CORES, pinning


def machine(options: Options, postgres_version: str | None) -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(USABLE_CORES),
        "pinning": f"server on core {SERVER_CORE}, load generator on core {LOAD_CORE}"
        if pinning() else "none (fewer than two cores, or no taskset)",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadgen": loadgen.describe(options.loadgen),
        "aiohttp": metadata.version("aiohttp"),
        "uvloop": _version("uvloop"),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def settings(options: Options, baseline: Revision | None) -> dict:
    return {
        "quick": options.quick, "notes": options.notes, "memory_notes": options.memory_notes,
        "memory_seeded": "over HTTP (POST /notes), hence fewer notes",
        "runs": options.runs, "duration_s": options.duration, "warmup_s": options.warmup,
        "probe_duration_s": options.probe_duration, "connections": options.connections,
        "probe_connections": 1, "loadgen": options.loadgen, "service_workers": 1,
        "baseline": baseline and {"name": baseline.name, "commit": baseline.commit},
        "variant": options.variant and VARIANTS[options.variant],
    }


def write_json(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    stamped = {"generated_at": now, **results}
    path.write_text(json.dumps(stamped, indent=2) + "\n")


def tables(results: dict) -> str:
    seeded = [
        f"{adapter} {found['notes']:,}" + (" (over HTTP)" if found["seeded"] == "http" else "")
        for adapter, found in results["adapters"].items() if "notes" in found
    ]
    baseline = results["settings"].get("baseline")
    variant = results["settings"].get("variant")
    lines = [
        f"notes: {', '.join(seeded)}; loadgen {results['machine']['loadgen']};"
        f" {results['machine']['pinning']}",
        *([f"baseline: {baseline['name']} ({baseline['commit']}): its ratio (SQL stores: against a"
           " ceiling on its own store), the change in points, the change against today's ceiling"
           " for both (today C), and today's rps against its"]
          if baseline else []),
        *([f"variant: this service with {variant}: its ratio, and its change from the plain one in points"]
          if variant else []),
        "",
        f"{'adapter':<11}{'scenario':<10}{'service rps':>12}{'ceiling rps':>12}{'ratio':>7}"
        + (f"{'baseline':>9}{'change':>8}{'today C':>8}{'rps':>8}" if baseline else "")
        + (f"{'variant':>9}{'change':>8}" if variant else "")
        + f"{'service p50/p99 ms':>21}{'ceiling p50/p99 ms':>21}{'errors':>8}",
    ]
    for adapter, found in results["adapters"].items():
        if "scenarios" not in found:
            why = found.get("skipped") or f"FAILED: {found.get('failed')}"
            lines.append(f"{adapter:<11}{why.splitlines()[0]}")
            continue
        for name, row in found["scenarios"].items():
            ours, best = row["service"], row["ceiling"]
            errors = sum(row.get(side, {}).get("errors", 0)
                         for side in ("service", "ceiling", "baseline", "baseline_ceiling", "variant"))
            lines.append(
                f"{adapter:<11}{name:<10}{ours['rps']:>12,.0f}{best['rps']:>12,.0f}{row['ratio']:>7.2f}"
                + (_against_baseline(row) if baseline else "")
                + (_variant(row) if variant else "")
                + f"{_latency(ours):>21}{_latency(best):>21}{errors:>8}"
            )
    lines.extend(_probe_lines(results))
    lines.extend(_feed_lines(results))
    lines.extend(_check_lines(results.get("checks", {})))
    return "\n".join(lines)


def _feed_lines(results: dict) -> list[str]:
    rows = [(a, f["feed"]) for a, f in results["adapters"].items() if f.get("feed")]
    if not rows:
        return []
    target = plan.TARGETS["feed_changes_per_s"]
    lines = ["", f"{'adapter':<11}{'the feed, read from its start':<42}{'changes/s':>14}  target"]
    for adapter, feed in rows:
        lines.append(f"{adapter:<11}{feed['changes']:>12,} changes in {feed['seconds']:>6.2f} s{'':<12}"
                     f"{feed['changes_per_s']:>14,}  >= {target:,}: {_verdict(feed['changes_per_s'] >= target)}")
    return lines


def _against_baseline(row: dict) -> str:
    """The baseline's ratio, and today's minus it in points (hundredths of the ceiling)."""
    before = row["baseline_ratio"]
    same_ceiling = (row["ratio"] - row["baseline_ratio_to_todays_ceiling"]) * 100
    rps = row["rps_over_baseline"] - 1
    return f"{before:>9.2f}{(row['ratio'] - before) * 100:>+8.1f}{same_ceiling:>+8.1f}{rps * 100:>+7.1f}%"


def _variant(row: dict) -> str:
    """The variant's ratio, and its difference from the plain service's in points."""
    return f"{row['variant_ratio']:>9.2f}{(row['variant_ratio'] - row['ratio']) * 100:>+8.1f}"


def _latency(summary: dict) -> str:
    return f"{summary['p50_ms']:.2f} / {summary['p99_ms']:.2f}"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _probe_lines(results: dict) -> list[str]:
    rows = [(a, f) for a, f in results["adapters"].items() if f.get("probes")]
    if not rows:
        return []
    lines = ["", f"{'adapter':<11}{'probe (1 connection)':<42}{'p50 ms':>14}{'ratio':>8}  target"]
    for adapter, found in rows:
        for name, probe in found["probes"].items():
            if "ratio" in probe:
                label = f"{name}: 90% depth / first page"
                p50 = f"{probe['depth']['p50_ms']:.2f} / {probe['first']['p50_ms']:.2f}"
                target = plan.TARGETS["depth_ratio"]
                lines.append(f"{adapter:<11}{label:<42}{p50:>14}{probe['ratio']:>8.2f}"
                             f"  <= {target} {_verdict(probe['ratio'] <= target)}")
            else:
                label = f"{name}={data.MARKER} (in 1% of notes)"
                target = plan.TARGETS["q_p50_ms"]
                lines.append(f"{adapter:<11}{label:<42}{probe['p50_ms']:>14.2f}{'':>8}"
                             f"  <= {target:.0f} ms {_verdict(probe['p50_ms'] <= target)}")
    return lines


def _check_lines(checks: dict) -> list[str]:
    lines = [_scale_line(a, found) for a, found in checks.get("scale", {}).items()]
    lines += [_rss_line(a, found) for a, found in checks.get("rss", {}).items()]
    for adapter, found in checks.get("owners", {}).items():
        for page, row in found["pages"].items():
            lines.append(
                f"owners {adapter:<11} {page} of 1 of {found['owners']} owners / of the only owner,"
                f" {found['notes']:,} notes: p50 {row['shared']['p50_ms']:.2f} / {row['alone']['p50_ms']:.2f} ms"
                f" = {row['ratio']:.2f}x (target {found['target']}x) {_verdict(row['ratio'] <= found['target'])}"
            )
    transfer = checks.get("transfer")
    if transfer:
        for direction in ("sqlite->postgresql", "postgresql->sqlite"):
            row = transfer[direction]
            ok = row["seconds"] < transfer["target_s"] and row["peak_rss_mb"] < transfer["target_mb"]
            lines.append(
                f"copy   {direction:<19} {transfer['notes']:,} notes in {row['seconds']} s ({row['notes_per_s']:,}"
                f" notes/s; the driver alone {row['ceiling_s']} s, ratio {row['ratio']:.2f}), peak RSS"
                f" {row['peak_rss_mb']} MB (target < {transfer['target_s']:.0f} s, < {transfer['target_mb']:.0f} MB)"
                f" {_verdict(ok)}"
            )
            lines.append(f"       {'':<19} it said: {row['said']}")
    for adapter, row in checks.get("export", {}).items():
        fast = row["notes_per_s"] >= row["target_notes_per_s"]
        lines.append(
            f"export {adapter:<11} GET /export of {row['notes']:,} notes ({row['megabytes']} MB) in {row['seconds']} s:"
            f" {row['notes_per_s']:,} notes/s, server RSS {row['rss_at_start_mb']} -> {row['peak_rss_mb']} MB"
            f" (target >= {row['target_notes_per_s']:,} notes/s) {_verdict(fast)}"
        )
    if "memory" in checks:
        lines.append(f"checks memory      {checks['memory']}")
    return ["", *lines] if lines else []


def _scale_line(adapter: str, found: dict) -> str:
    big, small = found["big"]["p50_ms"], found["small"]["p50_ms"]
    ok = _verdict(found["ratio"] <= found["target"])
    return (
        f"scale  {adapter:<11} POST p50 at {found['big_notes']:,} / at {found['small_notes']:,}"
        f" notes: {big:.2f} / {small:.2f} ms = {found['ratio']:.2f}"
        f" (target <= {found['target']}) {ok}"
    )


def _rss_line(adapter: str, found: dict) -> str:
    peak, target = found["peak_rss_mb"], found["target_mb"]
    return (
        f"rss    {adapter:<11} peak {peak:.1f} MB (at start {found['rss_at_start_mb']:.1f}) walking"
        f" {found['notes_walked']:,} notes in {found['pages']:,} pages, {found['seconds']} s"
        f" (target < {target:.0f} MB) {_verdict(peak < target)}"
    )
