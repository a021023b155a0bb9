"""One line, in the service's words, for a store that cannot be opened, and URLs without secrets.

A failed connection reaches the command line wrapped once or twice (in SQLAlchemy's error when
migrating, in `StorageUnavailableError` when serving), in the driver's words: it names the
symptom ("database "x" does not exist"). An operator wants the fix, on one line, and must never
see the password of DATABASE_URL in it, nor in a log line or a process title.
"""

from __future__ import annotations

import errno
import getpass
import os
import shlex
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg


@dataclass(frozen=True, slots=True)
class PostgresTarget:
    """Where a postgresql:// URL points, with the defaults libpq and asyncpg apply."""

    host: str
    port: int
    user: str
    database: str

    @classmethod
    def of(cls, database_url: str) -> PostgresTarget:
        parts = urlsplit(database_url)
        try:
            port = parts.port or int(os.environ.get("PGPORT", 5432))
        except ValueError:  # a port that is no number: asyncpg says so in its own error
            port = 5432
        user = unquote(parts.username or "") or os.environ.get("PGUSER") or getpass.getuser()
        return cls(
            host=parts.hostname or os.environ.get("PGHOST", "localhost"),
            port=port,
            user=user,
            database=unquote(parts.path.lstrip("/")) or os.environ.get("PGDATABASE", user),
        )

    @property
    def options(self) -> list[str]:
        """The host and port as options of PostgreSQL's command-line tools."""
        return ["-h", self.host, "-p", str(self.port)]

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _missing_database(error: BaseException, to: PostgresTarget) -> str | None:
    if not isinstance(error, asyncpg.InvalidCatalogNameError):
        return None
    command = shlex.join(["createdb", *to.options, "-U", to.user, to.database])
    return f'database "{to.database}" does not exist on {to.where}: create it with \'{command}\''


def _refused_login(error: BaseException, to: PostgresTarget) -> str | None:
    if isinstance(error, asyncpg.InvalidPasswordError):
        return (f'PostgreSQL at {to.where} refused the password of user "{to.user}":'
                " check the password in the database URL")
    if not isinstance(error, asyncpg.InvalidAuthorizationSpecificationError):
        return None
    if "does not exist" in str(error):
        command = shlex.join(["createuser", *to.options, "--pwprompt", to.user])
        return (f'role "{to.user}" does not exist on {to.where}: create it as a superuser with'
                f" '{command}', or name another user in the database URL")
    return f'PostgreSQL at {to.where} refused user "{to.user}": {_first_line(error)}'


def _unreachable(error: BaseException, to: PostgresTarget) -> str | None:
    if isinstance(error, socket.gaierror):
        return f"cannot find the host {to.host!r} of the database URL: {error.strerror}"
    if isinstance(error, TimeoutError):
        return (f"PostgreSQL at {to.where} did not answer in time: is the host right,"
                " and does no firewall drop the connection?")
    if isinstance(error, ConnectionRefusedError) or "Connect call failed" in str(error):
        return (f"nothing is listening at {to.where}:"
                " is PostgreSQL running, and are host and port right?")
    if isinstance(error, OSError) and error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"cannot reach {to.where}: {os.strerror(error.errno).lower()}"
    return None


def _not_ready(error: BaseException, to: PostgresTarget) -> str | None:
    if isinstance(error, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
        return f"PostgreSQL at {to.where} accepts no connection now: {_first_line(error)}"
    return None


_DESCRIPTIONS: tuple[Callable[[BaseException, PostgresTarget], str | None], ...] = (
    _missing_database, _refused_login, _unreachable, _not_ready,
)


def connect_problem(error: BaseException, database_url: str) -> str | None:
    """What went wrong connecting to PostgreSQL and how to fix it, or None for other errors.

    The driver's error is looked for along the chain of causes, however it was wrapped.
    """
    if urlsplit(database_url).scheme.lower() not in ("postgresql", "postgres"):
        return None
    target = PostgresTarget.of(database_url)
    for cause in _causes(error):
        for describe in _DESCRIPTIONS:
            if (line := describe(cause, target)) is not None:
                return line
    return None


def unusable_path(database_file: str) -> str | None:
    """What keeps a SQLite database from being made or opened at this path, told before SQLite
    tries: a missing directory (SQLite creates a missing file, but a missing directory is more
    likely a typo in the URL), or a directory where the file should be."""
    if Path(database_file).is_dir():
        return f"{database_file} is a directory: name the store's file, e.g. sqlite:///{database_file}/notes.db"
    directory = Path(database_file).parent
    if directory.is_dir():
        return None
    return (f"the directory {str(directory)!r}"
            " of the SQLite database does not exist: create it first")


def one_line(error: BaseException) -> str:
    """The error's message without its wrapper's text: SQLAlchemy's carries the driver's in
    `orig`, and adds a line of its own pointing to its documentation."""
    return _first_line(getattr(error, "orig", None) or error)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _causes(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
