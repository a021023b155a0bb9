"""schemathesis, driven by /openapi.json, against the live service on every adapter: every check,
in every phase (examples, coverage, fuzzing, stateful).

Two files next to this one take part. schemathesis.toml is the one place where a check accepts a
status beyond its defaults, each time because the check contradicts an RFC, or because a value's
validity is the store's state (an import file, a change token), and it names the section.
schemathesis_hooks.py gives requests the two values no client makes up: a listing cursor
(signed by the server, here with the secret the test gives it) and a fresh Idempotency-Key.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import Server, run

pytestmark = [pytest.mark.slow, pytest.mark.longest]

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CONFIG = HERE / "schemathesis.toml"
HOOKS = HERE / "schemathesis_hooks.py"
PHASES = "examples,coverage,fuzzing,stateful"
# About 8 s a store on two cores; the coverage phase, whose cases do not depend on this number,
# takes most of it. --max-examples 100 finds nothing more (tried on every store, several seeds).
EXAMPLES = 10
CURSOR_SECRET = "schemathesis-cursor-secret"
OWNER = "schemathesis"


def schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is a test dependency but is not installed", pytrace=False)
    return [found]


def owner_with_token(database_url: str) -> tuple[str, str, str]:
    """An owner of a migrated store, a write token of it, and the token's id, by the command line."""
    added = run("users", "add", OWNER, "--database-url", database_url)
    assert added.returncode == 0, added.stderr
    issued = run("tokens", "issue", OWNER, "--database-url", database_url)
    assert issued.returncode == 0, issued.stderr
    token_id = re.search(r"issued token (\d+)", issued.stderr)
    assert token_id is not None, issued.stderr
    return OWNER, issued.stdout.strip(), token_id[1]


def test_schemathesis_with_every_check_in_every_phase_finds_nothing(any_database_url: str, tmp_path: Path) -> None:
    """memory:// runs as a laptop does (auth local: a token is optional, and the description says
    so); SQLite and PostgreSQL run with --auth required and a token, so every operation is also
    tried without one (schemathesis's ignored_auth check)."""
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "NOTES_CURSOR_SECRET": CURSOR_SECRET,  # the hooks sign cursors with it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    # local: schemathesis would make up Authorization headers and then call their absence a fault,
    # though the description offers the token as an alternative to none (security: [bearer, {}])
    auth = ["--generation-with-security-parameters", "false"]
    flags, config = ["--cursor-secret", CURSOR_SECRET], CONFIG
    if not any_database_url.startswith("memory:"):
        owner, token, token_id = owner_with_token(any_database_url)
        env |= {"NOTES_TEST_OWNER": owner, "NOTES_TEST_TOKEN_ID": token_id, "NOTES_TEST_TOKEN": token}
        # The token through the description's own security scheme, so that the checks of
        # authentication know which requests carry it (a plain --header is added to all of them).
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG.read_text() + '\n[auth.openapi.bearerAuth]\nbearer = "${NOTES_TEST_TOKEN}"\n')
        auth, flags = [], [*flags, "--auth", "required"]
    server = Server(any_database_url, tmp_path / "server.log", *flags).wait_ready()
    try:
        run_ = subprocess.run(
            [*schemathesis(), "--config-file", str(config), "run", f"{server.base}/openapi.json",
             "--checks", "all", "--phases", PHASES, "--max-examples", str(EXAMPLES), "--seed", "20261123",
             "--no-color", *auth],
            capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,  # a fresh cache in tmp_path
        )
    finally:
        code = server.stop()
    assert run_.returncode == 0, run_.stdout[-6000:] + run_.stderr[-2000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in run_.stdout, run_.stdout[-6000:]
    assert " passed" in run_.stdout and "failed" not in run_.stdout
    assert code == 0 and "Traceback" not in server.output(), server.output()[-4000:]
