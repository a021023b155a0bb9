"""The command line: `python -m app serve`, `migrate`, `users`, `tokens`, `notes`, `export`, `import` and
`copy` (also `notes-api ...`).

Every failure an operator can fix ends the process with one line, `notes-api: error: ...` (with
--log-format json, one JSON record at ERROR), naming the fix, never a traceback and never the
database's password: 2 for a wrong command line, 1 for a store or a port that does not let the
server start.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from types import ModuleType
from urllib.parse import quote, unquote, urlsplit

from app.adapters.schema_version import SchemaMismatchError, StoreUnreachableError, check_schema
from app.domain.errors import NoteError, StorageUnavailableError
from app.entrypoints.logs import LogSettings, configure_logging, failure_lines, reports
from app.entrypoints.options import build_parser, named
from app.settings import (
    MIGRATION_LOCK_TIMEOUT,
    InvalidOriginError,
    Settings,
    UnsupportedDatabaseError,
    backend_of,
    normalized_origins,
    redacted,
    sqlite_path,
)

ACCOUNT_COMMANDS = ("users", "tokens", "notes")
TRANSFER_COMMANDS = ("export", "import", "copy")
ACCOUNT_TIMEOUT = 5.0  # seconds an account command waits on the database


class UsageError(Exception):
    """The command line (or its environment) asks for something that cannot work: exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(_log_settings(args))
    if args.command != "serve":  # (which stops on SIGTERM as on Ctrl-C by itself)
        signal.signal(signal.SIGTERM, _as_ctrl_c)
    try:
        if args.command in TRANSFER_COMMANDS:
            return _transfer_command(args)
        backend = backend_of(args.database_url, named(args, "--database-url"))
        if args.command == "migrate":
            if not args.lock_timeout > 0:
                raise UsageError(f"{named(args, '--lock-timeout')} must be more than 0 seconds,"
                                 f" not {args.lock_timeout:g}")
            return _migrate(args.database_url, backend, args.lock_timeout)
        if args.command in ACCOUNT_COMMANDS:
            return _account_command(args, backend)
        return _serve(args, backend)
    except (UsageError, UnsupportedDatabaseError) as error:
        return _fail(2, error, args)
    except (NoteError, OSError, ValueError) as error:
        return _fail(1, error, args)
    except KeyboardInterrupt:  # (import, copy and export say what they left: transfer.Interrupted)
        return _fail(130, UsageError("interrupted"), args)


def _as_ctrl_c(signum: int, frame: object) -> None:
    """SIGTERM (systemd, `docker stop`, `timeout`) stops a command as Ctrl-C does: it says so,
    and what it leaves behind, instead of vanishing mid-way with its temporary files."""
    raise KeyboardInterrupt


def _transfer_command(args: argparse.Namespace) -> int:
    from app.entrypoints import transfer  # the notes file and tqdm: only for these commands
    from app.entrypoints.notes_file import NotesFileError

    target = args.target if args.command == "copy" else args.database_url
    new_file = _new_sqlite_file(target) if args.command != "export" else None
    more: list[str] = []  # lines after the one: a bad file's further problems
    try:
        return _transfer(args, transfer)
    except transfer.Interrupted as interrupted:
        code, said = 130, str(interrupted)
    except KeyboardInterrupt:  # before the command began its work (making the target, say)
        code, said = 130, "interrupted"
    except NotesFileError as error:
        code, said = 1, str(error)
        more = [f"  line {problem.line}: {problem.detail}" for problem in error.problems[1:10]]
    except (UsageError, UnsupportedDatabaseError) as error:
        code, said = 2, str(error)
    except (NoteError, OSError, ValueError) as error:
        code, said = 1, str(error) or type(error).__name__
    except Exception as error:  # e.g. a row that a SQLite file let in against its schema's types
        logging.getLogger("app").debug("%s failed", args.command, exc_info=True)
        code, said = 1, (f"{args.command} failed ({type(error).__name__}: {error}); {_left_behind(args)};"
                         " --log-level debug shows where")
    if new_file is not None and _holds_no_notes(new_file):
        # Not removed: another process may have opened it meanwhile (a server started on it).
        said += f"; {redacted(target)} was made for this {args.command} and holds no notes: delete it, or run it again"
    sys.stderr.write(failure_lines(_log_settings(args), [said, *more]))
    return code


def _transfer(args: argparse.Namespace, transfer: ModuleType) -> int:
    err = reports(_log_settings(args))  # what the command did: text, or JSON records
    if args.command == "copy":
        for url, flag, env in ((args.source, "--from", "NOTES_COPY_FROM"), (args.target, "--to", "NOTES_COPY_TO")):
            if not url:
                raise UsageError(f"give {flag} URL, or {env} (a password in it then stays out of `ps`)")
        if not 0 <= args.progress_every < math.inf:  # nan and inf too; 0: a line for each batch
            raise UsageError("--progress-every must be a number of seconds, 0 or more")
        for url, flag in ((args.source, "--from"), (args.target, "--to")):
            _not_memory(url, named(args, flag))
        _existing(args.source, named(args, "--from"))
        if _same_store(args.source, args.target):
            raise UsageError("--from and --to name the same store: a copy needs another one to fill")
        check_schema(args.source, backend_of(args.source), ACCOUNT_TIMEOUT)
        _migrated(args.target)  # as serve would
        return int(transfer.run_copy(args, err))
    backend = _not_memory(args.database_url, named(args, "--database-url"))
    if args.command == "export":
        _existing(args.database_url, named(args, "--database-url"))
        check_schema(args.database_url, backend, ACCOUNT_TIMEOUT)
        return int(transfer.run_export(args, err))
    if args.input not in (None, "-"):
        if not os.path.exists(args.input):
            raise UsageError(f"there is no file {args.input}: give --input a notes file made by `notes-api export`,"
                             " or leave it out to read standard input")
        if os.path.isdir(args.input):
            raise UsageError(f"{args.input} is a directory: give --input a notes file made by `notes-api export`")
    args.opened_input = transfer.Input.opened(args.input)  # another kind of file makes no store
    _migrated(args.database_url)  # a new store takes an import as it is
    return int(transfer.run_import(args, err))


def _existing(url: str, flag: str) -> None:
    """A store to read from must be there: a SQLite file that is not is a mistyped path, which
    no migration would mend."""
    if backend_of(url) == "sqlite" and not os.path.exists(path := sqlite_path(url)):
        raise UsageError(f"there is no file {path}: give {flag} the URL of a store made by `notes-api serve`")
    if backend_of(url) == "sqlite" and os.path.isdir(path):
        raise UsageError(f"{path} is a directory: give {flag} the URL of a store's file, made by `notes-api serve`")


def _same_store(source: str, target: str) -> bool:
    """Whether two URLs name one store: one SQLite file, however its path is written, or one
    PostgreSQL database at the same host, port and parameters as written, whoever connects
    (another name for the same host is not seen through: a copy is refused only when sure)."""
    if backend_of(source) != backend_of(target):
        return False
    if backend_of(source) == "sqlite":
        one_file, other_file = sqlite_path(source), sqlite_path(target)
        if os.path.exists(one_file) and os.path.exists(other_file):
            return os.path.samefile(one_file, other_file)  # (a hard link too)
        return os.path.realpath(one_file) == os.path.realpath(other_file)
    one, other = urlsplit(source), urlsplit(target)
    if "," in one.netloc + other.netloc or unquote(one.path).strip("/") == "" or unquote(other.path).strip("/") == "":
        return False  # a list of hosts, or a database named by its user (or the query): not sure
    return ((one.hostname or "localhost", one.port or 5432, unquote(one.path), one.query)
            == (other.hostname or "localhost", other.port or 5432, unquote(other.path), other.query))


def _new_sqlite_file(url: str | None) -> str | None:
    """The path of a SQLite store that is not there yet (this command will make it), else None."""
    if not url:
        return None  # (said by the command itself)
    try:
        path = sqlite_path(url) if backend_of(url) == "sqlite" else None
    except (UnsupportedDatabaseError, ValueError):
        return None  # said by the command itself
    return path if path is not None and not os.path.exists(path) else None


def _holds_no_notes(path: str) -> bool:
    """Whether the SQLite file at `path` exists and holds no note (read only: nothing is made)."""
    if not os.path.exists(path):
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT EXISTS (SELECT 1 FROM notes) OR EXISTS (SELECT 1 FROM trash)").fetchone()
            return not found[0]
    except sqlite3.Error:  # not migrated as far as that
        return True


def _left_behind(args: argparse.Namespace) -> str:
    """What a transfer command that failed left: its target as it was (one transaction), or no file."""
    if args.command == "copy":
        return f"nothing was written to {redacted(args.target)}"
    if args.command == "import":
        return f"nothing was written to {redacted(args.database_url)}"
    if args.output in (None, "-"):
        return "standard output holds a part of the export"
    return f"{args.output} was not written"


def _migrated(database_url: str) -> None:
    """The store at this code's schema, as serve would leave it; Alembic's lines are not shown."""
    backend = backend_of(database_url)
    if not _at_head(database_url, backend, ACCOUNT_TIMEOUT):
        logging.getLogger("alembic").setLevel(logging.WARNING)
        _migrate(database_url, backend)


def _not_memory(url: str, flag: str) -> str:
    backend = backend_of(url, flag)
    if backend == "memory":
        raise UsageError(f"memory:// keeps nothing between processes: give a sqlite:// or postgresql:// URL to {flag}")
    return backend


def _account_command(args: argparse.Namespace, backend: str) -> int:
    if backend == "memory":
        raise UsageError(
            "memory:// keeps nothing between processes: give the server's store with --database-url or"
            " DATABASE_URL (for `make run`: sqlite:///notes.db)"
        )
    _existing(args.database_url, named(args, "--database-url"))  # a mistyped path: not "migrate it"
    check_schema(args.database_url, backend, ACCOUNT_TIMEOUT)  # a store the server has not migrated: one line
    from app.entrypoints.admin import run_account_command

    return run_account_command(args, err=reports(_log_settings(args)))


def _fail(code: int, error: Exception, args: argparse.Namespace) -> int:
    said = str(error) or type(error).__name__  # (a bare TimeoutError says nothing)
    sys.stderr.write(failure_lines(_log_settings(args), [said]))
    return code


def _migrate(database_url: str, backend: str, lock_timeout: float = MIGRATION_LOCK_TIMEOUT) -> int:
    if backend == "memory":
        raise UsageError(
            "nothing to migrate: memory:// keeps no schema; give --database-url or DATABASE_URL"
        )
    from app.adapters.migrate import migrate  # loads SQLAlchemy and Alembic: only when migrating

    migrate(database_url, backend, lock_timeout)  # raises StorageUnavailableError with one line
    return 0


def migration_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of `serve`'s migration child. The URL goes in the
    environment: a command line is visible to every user of the machine (ps), and the URL
    may carry a password."""
    command = [sys.executable, "-m", "app", "migrate",
               "--log-level", args.log_level, "--log-format", args.log_format]
    return command, {**os.environ, "DATABASE_URL": args.database_url}


def _migrate_in_child(args: argparse.Namespace) -> None:
    """`migrate` in a child process: the server then never loads SQLAlchemy and Alembic, which
    would hold some 25 MB of its memory for as long as it runs. The child reports its own errors."""
    command, env = migration_command(args)
    try:
        done = subprocess.run(command, env=env, check=False)
    except KeyboardInterrupt:  # Ctrl-C reached the child too (one process group): it says so
        raise SystemExit(130) from None
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def _serve(args: argparse.Namespace, backend: str) -> int:
    settings = _settings(args)
    _check_workers(args, backend)  # before migrating: a wrong command line changes nothing
    migrating = backend != "memory" and _needs_migrating(args, backend)
    # The HTTP adapter and its wiring: only to serve, once the store has answered (`migrate`,
    # `--help` and a start that fails on its store end without loading them), and before the
    # store is migrated (an install that lacks a part of them changes nothing).
    from app.entrypoints.server import ServeError, run_server
    from app.entrypoints.workers import run_workers

    if migrating:
        _migrate_in_child(args)
    try:
        if args.workers > 1:
            return run_workers(settings, args.host, args.port, args.workers, logs=_log_settings(args))
        run_server(settings, args.host, args.port, logs=_log_settings(args))
    except ServeError as error:
        return _fail(1, error, args)
    return 0


def _needs_migrating(args: argparse.Namespace, backend: str) -> bool:
    """Whether the store must be migrated before serving. With --no-migrate it must not: one
    whose schema this server does not fit is refused, since every request would fail on it."""
    if args.no_migrate:
        check_schema(args.database_url, backend, args.db_timeout)
        return False
    return not _at_head(args.database_url, backend, args.db_timeout)


def _at_head(database_url: str, backend: str, timeout: float) -> bool:
    """Whether the store is at this code's schema already, read with the driver alone: a restart
    then starts in a few milliseconds, without the migration (which loads SQLAlchemy and
    Alembic). A store that migrating would not mend raises its one line here, a second sooner
    and more clearly than the migration would."""
    try:
        check_schema(database_url, backend, timeout)
    except StoreUnreachableError:
        raise  # no such directory or database, nothing listening, a refused login, a lock
    except SchemaMismatchError as mismatch:
        if mismatch.newer:
            raise  # migrated by a later notes-api
        return False  # missing or behind
    except StorageUnavailableError:
        return False  # e.g. a hot SQLite journal, which only a read-write opening rolls back
    return True


def _settings(args: argparse.Namespace) -> Settings:
    return Settings(
        database_url=args.database_url,
        db_timeout=args.db_timeout,
        pool_size=args.pool_size,
        max_body_bytes=args.max_body_bytes,
        max_import_bytes=args.max_import_bytes,
        body_timeout=args.body_timeout,
        require_if_match=args.require_if_match,
        cursor_secret=args.cursor_secret,
        cors_origins=_cors_origins(args),
        auth=args.auth,
        rate_limit=args.rate_limit,
        keep_revisions=args.keep_revisions,
        trash_days=args.trash_days,
        keep_changes_days=args.keep_changes_days,
    )


def _check_workers(args: argparse.Namespace, backend: str) -> None:
    if args.workers < 1:
        raise UsageError(f"{named(args, '--workers')} must be at least 1")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"{named(args, '--port')} must be from 0 to 65535 (0 picks a free one), not {args.port}")
    for flag in ("--max-body-bytes", "--max-import-bytes", "--pool-size"):
        if getattr(args, flag[2:].replace("-", "_")) < 1:
            raise UsageError(f"{named(args, flag)} must be at least 1")
    for flag, seconds in (("--body-timeout", args.body_timeout), ("--db-timeout", args.db_timeout)):
        if not 0 < seconds < math.inf:  # nan and inf too
            raise UsageError(f"{named(args, flag)} must be a number of seconds above 0")
    if args.rate_limit is not None and args.rate_limit < 1:
        raise UsageError(f"{named(args, '--rate-limit')} must be at least 1 request a second; leave it out for no"
                         " limit")
    for flag, value in (("--keep-revisions", args.keep_revisions), ("--trash-days", args.trash_days),
                        ("--keep-changes-days", args.keep_changes_days)):
        if value < 1:
            raise UsageError(f"{named(args, flag)} must be at least 1")
    if args.workers > 1 and backend == "memory":
        raise UsageError("memory:// lives inside one process and cannot be shared by --workers;"
                         " use one worker, or sqlite:// or postgresql://")
    if args.workers > 1 and args.port == 0:
        raise UsageError("--port 0 would give each of the --workers a port of its own;"
                         " choose a port for them to share")


def _log_settings(args: argparse.Namespace) -> LogSettings:
    return LogSettings(level=args.log_level, format=args.log_format)


def _cors_origins(args: argparse.Namespace) -> tuple[str, ...]:
    """--cors-origin flags, else NOTES_CORS_ORIGINS: the flags replace the environment's list."""
    given = args.cors_origin
    if given is None:
        given = os.environ.get("NOTES_CORS_ORIGINS", "").split(",")
    try:
        return normalized_origins(given)
    except InvalidOriginError as error:
        raise UsageError(str(error)) from error


if __name__ == "__main__":
    sys.exit(main())
