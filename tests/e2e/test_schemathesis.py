"""schemathesis, driven by /openapi.json, against the live service on every adapter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import Server

pytestmark = pytest.mark.slow

# What the issue asks of the service: no 5xx, no response the description does not allow.
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")
EXAMPLES = 20


def schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is a test dependency but is not installed", pytrace=False)
    return [found]


def test_schemathesis_finds_no_server_error_and_no_response_outside_the_spec(
    any_database_url: str, tmp_path: Path
) -> None:
    server = Server(any_database_url, tmp_path / "server.log").wait_ready()
    try:
        run = subprocess.run(
            [*schemathesis(), "run", f"{server.base}/openapi.json", "--checks", CHECKS,
             "--max-examples", str(EXAMPLES), "--seed", "20261123", "--no-color"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
    finally:
        code = server.stop()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "passed" in run.stdout
    assert code == 0 and "Traceback" not in server.output(), server.output()[-4000:]
