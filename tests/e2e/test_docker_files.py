"""The Docker packaging, held to what the service needs without a Docker engine.

Only the docker client exists where these tests run, so `docker compose config` and `docker build`
are out of reach: the compose file is read with PyYAML and the Dockerfile with the small parser
below, and each test checks one promise the files make to whoever runs them.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PORT = "8080"
SERVE_COMMANDS = (
    ["notes-api", "serve"], ["python", "-m", "app", "serve"], ["python3", "-m", "app", "serve"],
)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions in order: comments dropped, continued lines joined, keywords upper-cased."""
    instructions, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker also skips blank and comment lines between continued lines
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, *arguments = (pending + stripped).split(None, 1)
        instructions.append(Instruction(keyword.upper(), "".join(arguments).strip()))
        pending = ""
    return instructions


def split_options(arguments: str) -> tuple[dict[str, str], str]:
    """`--from=builder src dst` -> ({"from": "builder"}, "src dst")."""
    options: dict[str, str] = {}
    while arguments.startswith("--"):
        option, _, arguments = arguments.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        arguments = arguments.lstrip()
    return options, arguments


def words(arguments: str) -> list[str]:
    """An exec-form JSON array as written; a shell-form command split the way a shell would."""
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def container_command(stage: list[Instruction]) -> list[str]:
    """What the container runs: an exec-form ENTRYPOINT takes CMD as arguments, a shell form not."""
    entrypoint = [i.arguments for i in stage if i.keyword == "ENTRYPOINT"]
    cmd = [i.arguments for i in stage if i.keyword == "CMD"]
    command = words(entrypoint[-1]) if entrypoint else []
    if cmd and (not entrypoint or entrypoint[-1].startswith("[")):
        command += words(cmd[-1])
    return command


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker reads it: `*` stays in one directory, `**` spans any."""
    regex, index = "", 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex, index = regex + "(.*/)?", index + 3
        elif pattern.startswith("**", index):
            regex, index = regex + ".*", index + 2
        elif pattern[index] in "*?":
            regex, index = regex + ("[^/]*" if pattern[index] == "*" else "[^/]"), index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            members = pattern[index + 1 : end]
            regex, index = regex + "[" + re.sub(r"^!", "^", members) + "]", end + 1
        else:
            regex, index = regex + re.escape(pattern[index]), index + 1
    return re.compile(regex)


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path`, or a directory above it, out of the build context."""
    parts = PurePosixPath(path.lstrip("/")).parts
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:  # as in Docker, the last pattern that matches decides
        negated, regex = pattern.startswith("!"), _pattern(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def listed(values: object) -> dict[str, str]:
    """Compose's environment as a mapping, whether written as a mapping or as KEY=value lines."""
    if isinstance(values, list):
        return dict(item.partition("=")[::2] for item in values)
    return {key: str(value) for key, value in (values or {}).items()}


def healthcheck_command(test: str | list[str]) -> list[str]:
    """Compose's healthcheck test as words: ["CMD", ...], ["CMD-SHELL", "..."] or a shell string."""
    kind, *rest = test if isinstance(test, list) else ["CMD-SHELL", test]
    return shlex.split(" ".join(rest)) if kind == "CMD-SHELL" else rest


def option(arguments: list[str], short: str, long: str) -> str | None:
    for index, word in enumerate(arguments):
        if word in (short, long) and index + 1 < len(arguments):
            return arguments[index + 1]
        if word.startswith(f"{long}="):
            return word.partition("=")[2]
    return None


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def ignored_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def test_compose_file_has_no_obsolete_version_key(compose):
    assert "version" not in compose


def test_compose_defines_the_api_and_its_database(compose):
    assert {"api", "db"} <= set(compose["services"])


def test_api_is_built_from_this_repository(compose):
    build = compose["services"]["api"]["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    assert (ROOT / context).resolve() == ROOT and (ROOT / "Dockerfile").is_file()


def test_database_is_postgres_16_alpine(compose):
    assert compose["services"]["db"]["image"] == "postgres:16-alpine"


def test_database_healthcheck_asks_pg_isready_for_the_service_database(compose):
    db = compose["services"]["db"]
    command = healthcheck_command(db["healthcheck"]["test"])
    env = listed(db["environment"])
    assert command[0] == "pg_isready"
    assert option(command, "-U", "--username") == env["POSTGRES_USER"]
    assert option(command, "-d", "--dbname") == env["POSTGRES_DB"]
    assert {"interval", "timeout", "retries"} <= set(db["healthcheck"])


def test_database_keeps_its_data_in_a_declared_named_volume(compose):
    mounts = [str(v).split(":") for v in compose["services"]["db"].get("volumes", [])]
    sources = [source for source, target, *_ in mounts if target == "/var/lib/postgresql/data"]
    assert sources and sources[0] in (compose.get("volumes") or {})


def test_compose_waits_for_a_healthy_database(compose):
    depends_on = compose["services"]["api"]["depends_on"]
    assert isinstance(depends_on, dict), "the short list form of depends_on waits for nothing"
    assert depends_on["db"]["condition"] == "service_healthy"


def test_api_publishes_port_8080(compose):
    published = set()
    for entry in compose["services"]["api"].get("ports", []):
        if isinstance(entry, dict):
            published.add((str(entry.get("published", "")), str(entry["target"])))
        else:
            *host, container = str(entry).split("/")[0].split(":")
            published.add((host[-1] if host else "", container))
    assert (PORT, PORT) in published


def test_api_database_url_points_at_the_db_service_with_its_credentials(compose):
    url = urlsplit(listed(compose["services"]["api"]["environment"])["DATABASE_URL"])
    db = listed(compose["services"]["db"]["environment"])
    assert url.scheme == "postgresql"
    assert url.hostname == "db"
    assert (url.username, url.password) == (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"])
    assert url.path.lstrip("/") == db["POSTGRES_DB"]


def test_every_stage_starts_from_the_same_slim_python_3_11_or_newer(dockerfile):
    stages = {}
    for instruction in (i for i in dockerfile if i.keyword == "FROM"):
        image, *alias = split_options(instruction.arguments)[1].split()
        base = stages.get(image, image)  # a stage built FROM an earlier stage inherits its image
        stages[alias[-1] if alias else image] = base
        match = re.fullmatch(r"python:3\.(\d+)(\.\d+)?-slim(-\w+)?", base)
        assert match and int(match[1]) >= 11, f"{base} is not a slim Python 3.11+ image"
    versions = {re.match(r"python:(3\.\d+)", base)[1] for base in stages.values()}
    assert len(versions) == 1, "the virtualenv copied between stages needs the same Python"


def test_final_stage_copies_only_what_the_builder_made(dockerfile):
    stage = final_stage(dockerfile)
    assert len([i for i in dockerfile if i.keyword == "FROM"]) >= 2
    copies = [split_options(i.arguments)[0] for i in stage if i.keyword in ("COPY", "ADD")]
    assert copies and all("from" in options for options in copies)


def test_service_runs_as_a_user_that_is_not_root(dockerfile):
    stage = final_stage(dockerfile)
    starts = [i for i, ins in enumerate(stage) if ins.keyword in ("CMD", "ENTRYPOINT")]
    assert starts, "the final stage names no command"
    start = starts[0]
    users = [i.arguments.partition(":")[0] for i in stage[:start] if i.keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert all(i.keyword != "USER" for i in stage[start:]), "a later USER would take over"


def test_image_exposes_port_8080(dockerfile):
    exposes = [i.arguments.split() for i in dockerfile if i.keyword == "EXPOSE"]
    exposed = [port.split("/")[0] for ports in exposes for port in ports]
    assert PORT in exposed


def test_healthcheck_asks_healthz_with_python_rather_than_curl(dockerfile):
    stage = final_stage(dockerfile)
    checks = [split_options(i.arguments)[1] for i in stage if i.keyword == "HEALTHCHECK"]
    assert checks and checks[-1].startswith("CMD")
    command = " ".join(words(checks[-1].removeprefix("CMD").strip()))
    assert f":{PORT}/healthz" in command and "urllib" in command
    assert "curl" not in command and "wget" not in command


def test_container_serves_the_cli_on_all_interfaces(dockerfile):
    command = container_command(final_stage(dockerfile))
    assert any(command[: len(serve)] == serve for serve in SERVE_COMMANDS), command
    assert option(command, "--host", "--host") == "0.0.0.0"
    assert option(command, "--port", "--port") in (None, PORT)


def test_container_applies_migrations_before_serving(dockerfile):
    command = container_command(final_stage(dockerfile))
    env = " ".join(i.arguments for i in dockerfile if i.keyword == "ENV")
    assert "--no-migrate" not in command and "NOTES_NO_MIGRATE" not in env


def test_every_copy_source_is_in_the_build_context(dockerfile, ignored_patterns):
    copies = [split_options(i.arguments) for i in dockerfile if i.keyword in ("COPY", "ADD")]
    # Sources from an earlier stage (--from) are not in the repository; the last word is the target.
    sources = [s for options, rest in copies if "from" not in options for s in words(rest)[:-1]]
    assert sources
    for source in sources:
        relative = source.lstrip("/")
        wildcard = any(c in relative for c in "*?[")
        found = list(ROOT.glob(relative)) if wildcard else (ROOT / relative).exists()
        assert found, f"COPY {source}: no such path in the repository"
        assert not is_ignored(source, ignored_patterns), f"COPY {source}: left out by .dockerignore"


@pytest.mark.parametrize(
    "path",
    [
        ".venv", ".git/HEAD", "notes.db", "data/notes.db", "bench/results/run.json",
        "tests/conftest.py", "app/__pycache__/cli.cpython-311.pyc", ".pytest_cache/v",
    ],
)
def test_build_context_leaves_out_local_state(ignored_patterns, path):
    assert is_ignored(path, ignored_patterns)
