"""`--baseline REV`: the service as of another git revision, measured in the same run.

The revision's files are exported (`git archive`) to a temporary folder and its server runs
from there on this checkout's interpreter and libraries, so the two sides differ by their code
alone. SQL stores are migrated by this checkout, and the baseline server must accept the flags
the harness passes to `serve`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.processes import ROOT


@dataclass(frozen=True)
class Revision:
    name: str  # as given on the command line
    commit: str  # its short hash
    root: Path  # where its files are


def export(name: str, into: Path) -> Revision:
    """The files of revision `name` in the folder `into`; RuntimeError when git cannot."""
    commit = _git("rev-parse", "--short", "--verify", f"{name}^{{commit}}").decode().strip()
    archive = _git("archive", "--format=tar", commit)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return Revision(name, commit, into)


def _git(*args: str) -> bytes:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.decode().strip()}")
    return done.stdout
