"""The command line: `python -m app serve` and `python -m app migrate` (also `notes-api ...`)."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from app.container import SUPPORTED_URLS, Settings, UnsupportedDatabaseError, backend_of
from app.domain.errors import StorageUnavailableError
from app.entrypoints.http.cors import InvalidOriginError, normalized_origins
from app.entrypoints.http.logs import FORMATS, LEVELS, LogSettings, configure_logging

log = logging.getLogger("app")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _flag(parser: argparse.ArgumentParser, flag: str, env: str, default: str, help: str, **kw) -> None:
    parser.add_argument(flag, default=_env(env, default), help=f"{help} [env {env}; default %(default)s]", **kw)


def _switch(parser: argparse.ArgumentParser, flag: str, env: str, help: str) -> None:
    on = _env(env, "").lower() in ("1", "true", "yes", "on")
    parser.add_argument(flag, action="store_true", default=on, help=f"{help} [env {env}]")


def _database_flag(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "--database-url", "DATABASE_URL", "memory://", f"where notes live: {SUPPORTED_URLS}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notes-api", description="The Notes REST API.",
        epilog="Run 'notes-api serve --help' for the server's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="serve the HTTP API", description="Serve the HTTP API.")
    _database_flag(serve)
    _flag(serve, "--host", "NOTES_HOST", "127.0.0.1", "address to listen on")
    _flag(serve, "--port", "NOTES_PORT", "8080", "port to listen on", type=int)
    _flag(serve, "--workers", "NOTES_WORKERS", "1", "server processes sharing the port", type=int)
    _switch(serve, "--no-migrate", "NOTES_NO_MIGRATE", "do not apply pending migrations at start-up")
    _flag(serve, "--pool-size", "NOTES_POOL_SIZE", "10", "PostgreSQL connections per process", type=int)
    _flag(serve, "--db-timeout", "NOTES_DB_TIMEOUT", "5", "seconds to wait on the database before a 503", type=float)
    _flag(serve, "--max-body-bytes", "NOTES_MAX_BODY_BYTES", str(1024 * 1024), "largest request body", type=int)
    _switch(serve, "--require-if-match", "NOTES_REQUIRE_IF_MATCH", "answer 428 to PUT, PATCH and DELETE without If-Match")
    _flag(serve, "--cursor-secret", "NOTES_CURSOR_SECRET", "notes-cursor", "key that signs listing cursors (share it between processes)")
    _log_flags(serve)
    serve.add_argument(
        "--cors-origin", action="append", metavar="ORIGIN",
        help="let browser pages of this origin call the API; repeat for more"
        " [env NOTES_CORS_ORIGINS, comma-separated; default none: no CORS headers]",
    )

    migrate = commands.add_parser("migrate", help="apply pending database migrations", description="Apply pending migrations.")
    _database_flag(migrate)
    _log_flags(migrate)
    return parser


def _log_flags(parser: argparse.ArgumentParser) -> None:
    _flag(parser, "--log-level", "NOTES_LOG_LEVEL", "info", "debug, info (with the access log), warning or error",
          type=str.lower, choices=LEVELS)
    _flag(parser, "--log-format", "NOTES_LOG_FORMAT", "text", "text, or json: one object per line",
          type=str.lower, choices=FORMATS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(_log_settings(args))
    if args.command == "serve":  # refuse a bad origin before migrating anything
        args.cors_origin = _cors_origins(args, parser)
    try:
        backend = backend_of(args.database_url)
    except UnsupportedDatabaseError as error:
        parser.exit(2, f"notes-api: error: {error}\n")
    try:
        if args.command == "migrate":
            _migrate(args.database_url, backend)
        elif not args.no_migrate and backend != "memory":
            _migrate_in_child(args)
        if args.command == "serve":
            return _serve(args, backend, parser)
    except (StorageUnavailableError, OSError, ValueError) as error:
        parser.exit(1, f"notes-api: error: {error}\n")
    return 0


def _migrate(database_url: str, backend: str) -> None:
    from app.adapters.migrate import migrate

    try:
        migrate(database_url, backend)
    except Exception as error:  # the driver's or Alembic's: say it in one line, not a traceback
        raise StorageUnavailableError(f"cannot migrate {database_url}: {error}") from error


def _migrate_in_child(args: argparse.Namespace) -> None:
    """`migrate` in a child process: the server then never loads SQLAlchemy and Alembic, which
    would hold some 25 MB of its memory for as long as it runs. The child reports its own errors."""
    command = [sys.executable, "-m", "app", "migrate", "--database-url", args.database_url,
               "--log-level", args.log_level, "--log-format", args.log_format]
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def _log_settings(args: argparse.Namespace) -> LogSettings:
    return LogSettings(level=getattr(args, "log_level", "info"), format=getattr(args, "log_format", "text"))


def _cors_origins(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """--cors-origin flags, else NOTES_CORS_ORIGINS: the flags replace the environment's list."""
    given = args.cors_origin if args.cors_origin is not None else _env("NOTES_CORS_ORIGINS", "").split(",")
    try:
        return normalized_origins(given)
    except InvalidOriginError as error:
        parser.exit(2, f"notes-api: error: {error}\n")


def _serve(args: argparse.Namespace, backend: str, parser: argparse.ArgumentParser) -> int:
    from app.entrypoints.server import run_server, run_workers

    settings = Settings(
        database_url=args.database_url,
        db_timeout=args.db_timeout,
        pool_size=args.pool_size,
        max_body_bytes=args.max_body_bytes,
        require_if_match=args.require_if_match,
        cursor_secret=args.cursor_secret,
        cors_origins=args.cors_origin,
    )
    if args.workers < 1:
        parser.exit(2, "notes-api: error: --workers must be at least 1\n")
    if args.workers > 1:
        if backend == "memory":
            parser.exit(
                2,
                "notes-api: error: memory:// lives inside one process and cannot be shared by"
                " --workers; use one worker, or sqlite:// or postgresql://\n",
            )
        return run_workers(settings, args.host, args.port, args.workers, logs=_log_settings(args))
    run_server(settings, args.host, args.port, logs=_log_settings(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
