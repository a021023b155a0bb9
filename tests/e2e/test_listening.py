"""The start-up line names the address actually listened on, and the API docs there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.e2e.processes import Server, run

pytestmark = pytest.mark.slow


def test_port_0_logs_the_port_it_picked_and_where_the_docs_are(tmp_path: Path) -> None:
    server = Server("memory://", tmp_path / "server.log", port=0)
    try:
        output = server.wait_for("serving on")
        found = re.search(r"serving on http://127\.0\.0\.1:(\d+) \(memory://\);"
                          r" auth local \(--auth auto: listening on loopback only\);"
                          r" API docs at http://127\.0\.0\.1:(\d+)/docs\n", output)
        assert found and found[1] == found[2] and found[1] != "0", output
        assert requests.get(f"http://127.0.0.1:{found[1]}/docs", timeout=10).status_code == 200
    finally:
        assert server.stop() == 0, server.output()


def test_port_0_with_several_workers_is_refused(tmp_path: Path) -> None:
    result = run("serve", "--database-url", f"sqlite:///{tmp_path / 'notes.db'}", "--port", "0",
                 "--workers", "2", timeout=60)
    assert result.returncode == 2
    assert result.stderr == ("notes-api: error: --port 0 would give each of the --workers a port of"
                             " its own; choose a port for them to share\n")
    assert not (tmp_path / "notes.db").exists()  # refused before migrating anything
