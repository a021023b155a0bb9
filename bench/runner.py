"""Measuring: warm up, then interleave the sides of a comparison (A B A B ...), take medians.

Interleaving spreads slow drift (a checkpoint, autovacuum, a noisy neighbour) over every side
instead of charging it to whichever ran last, and a ratio is the median of the ratios of runs
made one after the other, so a slow minute on a shared machine lowers both sides of a pair.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench import builtin_load, loadgen
from bench.loadgen import Request, Sample


@dataclass(frozen=True)
class Target:
    """Where to send which requests."""

    base_url: str
    request: Request


@dataclass(frozen=True)
class Summary:
    """The medians of several runs against one target."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    runs: list[Sample] = field(repr=False)

    @classmethod
    def of(cls, samples: list[Sample]) -> Summary:
        return cls(
            rps=statistics.median(s.rps for s in samples),
            p50_ms=statistics.median(s.p50_ms for s in samples),
            p99_ms=statistics.median(s.p99_ms for s in samples),
            errors=sum(s.errors for s in samples),
            runs=samples,
        )

    def as_dict(self) -> dict:
        return {
            "rps": round(self.rps, 1), "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3), "errors": self.errors,
            "runs": [s.as_dict() for s in self.runs],
        }


@dataclass(frozen=True)
class Load:
    """How every measurement is made."""

    kind: str  # "wrk" or "builtin"
    runs: int
    duration: float
    warmup: float
    connections: int = 32

    def compare(self, *targets: Target) -> list[Summary]:
        """Warm every target up, then run them in turn, `runs` times each: A B C, B C A, C A B...

        The order turns each round so that no target always runs first after a pause.
        """
        for target in targets:
            warm_up(target, self.warmup, self.connections)
        samples: list[list[Sample]] = [[] for _ in targets]
        for round_ in range(self.runs):
            for i in range(len(targets)):
                index = (round_ + i) % len(targets)
                samples[index].append(self._run(targets[index]))
        return [Summary.of(found) for found in samples]

    def measure(self, target: Target) -> Summary:
        warm_up(target, self.warmup, self.connections)
        return Summary.of([self._run(target) for _ in range(self.runs)])

    def _run(self, target: Target) -> Sample:
        return loadgen.run(
            self.kind, target.base_url, target.request, self.duration, self.connections
        )


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, rounded; 0 when a side did nothing (its errors say why)."""
    return round(numerator / denominator, 3) if denominator else 0.0


def paired_ratio(ours: Summary, best: Summary) -> float:
    """The median of run-by-run throughput ratios of two sides measured in the same rounds."""
    return round(statistics.median(
        ratio(a.rps, b.rps) for a, b in zip(ours.runs, best.runs, strict=True)
    ), 3)


def warm_up(target: Target, seconds: float, connections: int) -> None:
    """A short load from the harness itself (no process to start): caches, pools, statements."""
    if seconds <= 0:
        return
    builtin_load.run(loadgen.builtin_spec(target.base_url, target.request, seconds, connections))
