"""Measuring: warm up, then interleave the two sides of a comparison (A B A B ...), take medians.

Interleaving spreads slow drift (a checkpoint, autovacuum, a noisy neighbour) over both sides
instead of charging it to whichever ran last.
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

    def compare(self, a: Target, b: Target) -> tuple[Summary, Summary]:
        """Warm both up, then run A B A B ... `runs` times each."""
        warm_up(a, self.warmup, self.connections)
        warm_up(b, self.warmup, self.connections)
        samples_a, samples_b = [], []
        for _ in range(self.runs):
            samples_a.append(self._run(a))
            samples_b.append(self._run(b))
        return Summary.of(samples_a), Summary.of(samples_b)

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


def warm_up(target: Target, seconds: float, connections: int) -> None:
    """A short load from the harness itself (no process to start): caches, pools, statements."""
    if seconds <= 0:
        return
    builtin_load.run(loadgen.builtin_spec(target.base_url, target.request, seconds, connections))
