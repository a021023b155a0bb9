"""/docs in headless Chromium: the rendered page shows every operation of the description."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.processes import Server

pytestmark = pytest.mark.slow

# As the machine's own probe starts it: no sandbox as root, and no calls to the outside.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing; .ci/run installs the Debian package 'chromium'", pytrace=False)
    pytest.skip("no Chromium here: install the Debian package 'chromium' to run the /docs browser test")


def rendered_operations(dom: str) -> set[tuple[str, str]]:
    """(METHOD, path) of every operation block Swagger UI rendered."""
    blocks = re.findall(r'class="opblock opblock-(\w+)[^"]*".*?data-path="([^"]+)"', dom, re.S)
    return {(method.upper(), path) for method, path in blocks}


def test_the_docs_page_renders_every_operation_offline(tmp_path: Path) -> None:
    browser = chromium()
    server = Server("memory://", tmp_path / "server.log").wait_ready()
    try:
        spec = requests.get(f"{server.base}/openapi.json").json()
        run = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
             "--dump-dom", f"{server.base}/docs"],
            capture_output=True, text=True, timeout=120,
        )
    finally:
        server.stop()
    dom = run.stdout
    assert "swagger-ui" in dom, run.stderr[-2000:]
    expected = {(method.upper(), path) for path, item in spec["paths"].items()
                for method in item if method != "parameters"}
    assert rendered_operations(dom) == expected
    assert "Notes API" in dom
    # the Authorize button, where a user pastes a token for every call the page tries
    assert re.search(r'class="btn authorize[^"]*"', dom), dom[:2000]
