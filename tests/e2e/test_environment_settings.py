"""Settings from the environment: a bad value names the variable that holds it, not just a flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.processes import free_port, run

pytestmark = pytest.mark.slow

INVALID_INT, INVALID_FLOAT = "invalid int value", "invalid float value"
SWITCH = "use 1, true, yes or on to turn it on; 0, false, no, off or nothing to leave it off"
BAD_VALUES = [
    ("NOTES_PORT", "abc", "--port", INVALID_INT),
    ("NOTES_WORKERS", "two", "--workers", INVALID_INT),
    ("NOTES_POOL_SIZE", "10.5", "--pool-size", INVALID_INT),
    ("NOTES_MAX_BODY_BYTES", "1MB", "--max-body-bytes", INVALID_INT),
    ("NOTES_DB_TIMEOUT", "soon", "--db-timeout", INVALID_FLOAT),
    ("NOTES_LOG_LEVEL", "loud", "--log-level", "choose from debug, info, warning, error"),
    ("NOTES_LOG_FORMAT", "xml", "--log-format", "choose from text, json"),
    ("NOTES_NO_MIGRATE", "maybe", "--no-migrate", SWITCH),
    ("NOTES_REQUIRE_IF_MATCH", "sometimes", "--require-if-match", SWITCH),
]


@pytest.mark.parametrize(("variable", "value", "flag", "reason"), BAD_VALUES,
                         ids=[v[0] for v in BAD_VALUES])
def test_a_bad_value_in_the_environment_is_one_line_naming_the_variable(
    variable: str, value: str, flag: str, reason: str
) -> None:
    result = run("serve", env={"NOTES_PORT": str(free_port()), variable: value}, timeout=30)
    assert result.returncode == 2
    assert result.stdout + result.stderr == (
        f"notes-api serve: error: {variable}={value!r} is not a valid value for {flag}: {reason}\n")


def test_migrate_names_its_own_command_and_the_variable_too() -> None:
    result = run("migrate", env={"NOTES_LOG_FORMAT": "xml"}, timeout=30)
    assert result.returncode == 2
    assert result.stderr == (
        "notes-api migrate: error: NOTES_LOG_FORMAT='xml' is not a valid value for --log-format:"
        " choose from text, json\n")


def test_a_flag_on_the_command_line_overrides_a_bad_value_in_the_environment(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    result = run("migrate", "--database-url", url, "--log-level", "warning",
                 env={"NOTES_LOG_LEVEL": "loud"}, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")


def test_switches_read_their_words_from_the_environment(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"  # not migrated: so --no-migrate refuses it
    result = run("serve", "--database-url", url, "--port", str(free_port()),
                 env={"NOTES_NO_MIGRATE": "Yes"}, timeout=60)
    assert result.returncode == 1 and "has no schema yet" in result.stderr


@pytest.mark.parametrize(("argv", "line"), [
    (("serve", "--port", "abc"), "notes-api serve: error: argument --port: invalid int value: 'abc'"
                                 " (notes-api serve --help shows the usage)"),
    (("users", "add", "bob", "--frobnicate"), "notes-api users add: error: unrecognized arguments: --frobnicate"
                                              " (notes-api users add --help shows the usage)"),
    (("tokens", "issue"), "notes-api tokens issue: error: the following arguments are required: name"
                          " (notes-api tokens issue --help shows the usage)"),
    (("frob",), "notes-api: error: argument COMMAND: invalid choice: 'frob' (choose from 'serve', 'migrate', 'users',"
                " 'tokens', 'notes', 'export', 'import', 'copy') (notes-api --help shows the usage)"),
])
def test_a_bad_command_line_is_one_line_naming_the_help_of_the_command_given(argv: tuple[str, ...], line: str) -> None:
    """Not argparse's usage block first (15 lines for serve), and an unknown flag told by the
    command it was given to, whose --help lists its flags, not by the program's."""
    result = run(*argv, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"{line}\n")


def test_only_serve_offers_memory_as_its_store_and_its_access_log() -> None:
    """Every other command refuses memory:// (no other process sees its notes), and has no
    access log: their --help said both."""
    for command in (("users", "list"), ("tokens", "issue"), ("export",), ("import",), ("migrate",)):
        shown = " ".join(run(*command, "--help", timeout=30).stdout.split())
        assert "default none: give the server's store" in shown and "memory://" not in shown, command
        assert "access log" not in shown, command
    served = " ".join(run("serve", "--help", timeout=30).stdout.split())
    assert "DATABASE_URL; default memory://" in served and "info (with the access log)" in served
