"""Every curl example of the README, in order, against a freshly started server: each succeeds,
and each listing finds something."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.processes import Server

README = Path(__file__).parents[2] / "README.md"


def curl_examples() -> list[str]:
    """The indented `curl` commands of the README, in order, each with its continuation lines
    (a trailing backslash, or a quoted body still open)."""
    commands, current = [], ""
    for line in README.read_text().splitlines():
        text = line.strip()
        if current or line.startswith("    curl "):
            current = f"{current}\n{text}" if current else text
            if not text.endswith("\\") and current.count("'") % 2 == 0:
                commands.append(current)
                current = ""
    return commands


@pytest.mark.slow
def test_every_curl_example_of_the_readme_works_in_order(tmp_path: Path) -> None:
    examples = curl_examples()
    assert len(examples) >= 8
    server = Server(f"sqlite:///{tmp_path / 'notes.db'}", tmp_path / "server.log").wait_ready()
    try:
        for example in examples:
            command = example.replace("localhost:8080", f"127.0.0.1:{server.port}").replace("curl -i", "curl -si", 1)
            done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
            status = int(done.stdout.split(" ", 2)[1])
            assert done.returncode == 0 and status < 400, (example, done.stdout)
            if "-X" not in command and re.search(r"/notes(\?|'|$)", command):
                assert '"notes":[{' in done.stdout, (example, done.stdout)  # a listing finds notes
    finally:
        assert server.stop() == 0
