"""The command line's flags. Each may also be set by an environment variable, checked like the flag.

argparse converts a string default with the flag's type but never checks it against the flag's
choices, and its error names only the flag: a bad `NOTES_PORT` would read as a bad `--port`
the user never gave. So a flag's environment variable is read here, after parsing, and a bad
value is reported with the variable that holds it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from app.entrypoints.logs import DEFAULT_LOGS, FORMATS, LEVELS, LogSettings, failure_lines, json_asked
from app.settings import MIGRATION_LOCK_TIMEOUT, SUPPORTED_URLS, Settings

_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
# The defaults live with the settings they belong to; the flags show them.
_SERVICE, _LOGS = Settings(), DEFAULT_LOGS
AUTH_MODES = ("required", "local", "auto")


def _shown(value: float) -> str:
    """A default as a flag would be written: 5, not 5.0."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _switch_value(text: str) -> bool:
    if text.strip().lower() not in _ON + _OFF:
        raise ValueError(
            "use 1, true, yes or on to turn it on; 0, false, no, off or nothing to leave it off"
        )
    return text.strip().lower() in _ON


@dataclass(frozen=True, slots=True)
class _FromEnv:
    action: argparse.Action
    env: str
    default: str | None
    convert: Callable[[str], Any]


class EnvParser(argparse.ArgumentParser):
    """An ArgumentParser whose flags fall back to environment variables, then to defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._from_env: list[_FromEnv] = []
        self._argv: Sequence[str] = sys.argv[1:]
        self._commands: tuple[str, dict[str, Any]] | None = None  # (dest, its parsers by name)

    def add_subparsers(self, **kwargs: Any) -> Any:
        commands = super().add_subparsers(**kwargs)
        if kwargs.get("dest"):  # which command was given: for `parse_args`'s error
            self._commands = (kwargs["dest"], commands.choices)
        return commands

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        """As argparse's, but a flag no command knows is told by the command given, whose --help
        lists the flags it takes (argparse tells it by the program, whose --help does not)."""
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            self._given(parsed).error(f"unrecognized arguments: {' '.join(unknown)}")
        return parsed

    def _given(self, parsed: argparse.Namespace) -> EnvParser:
        parser = self
        while parser._commands is not None:
            dest, parsers = parser._commands
            chosen = parsers.get(getattr(parsed, dest, ""))
            if chosen is None:
                break
            parser = chosen
        return parser

    def error(self, message: str) -> NoReturn:
        """A wrong command line: one line (with JSON logs one JSON record), naming the --help
        that shows the usage, rather than argparse's usage and line."""
        self._fail(f"{message} ({self.prog} --help shows the usage)")

    def _fail(self, line: str) -> NoReturn:
        if json_asked(self._argv):
            sys.stderr.write(failure_lines(LogSettings(format="json"), [line]))
            raise SystemExit(2)
        self.exit(2, f"{self.prog}: error: {line}\n")

    def env_flag(
        self, flag: str, env: str, default: str | None, help: str, *,
        type: Callable[[str], Any] = str, choices: Sequence[str] | None = None, shown: str | None = None,
        **more: Any,
    ) -> None:
        """A flag read from `env` when not given; `default` (None: none) when neither is; the
        help shows `shown` as the default, if given."""
        shown = shown or ("none" if default is None else default)
        action = self.add_argument(
            flag, type=type, choices=choices, help=f"{help} [env {env}; default {shown}]", **more
        )
        self._from_env.append(_FromEnv(action, env, default, type))

    def env_switch(self, flag: str, env: str, help: str) -> None:
        """An on/off flag, also on when `env` says 1, true, yes or on."""
        action = self.add_argument(
            flag, action="store_true", default=None, help=f"{help} [env {env}]"
        )
        self._from_env.append(_FromEnv(action, env, "", _switch_value))

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None:
            self._argv = args
        parsed, extras = super().parse_known_args(args, namespace)
        from_env = getattr(parsed, "from_env", {})
        for setting in self._from_env:
            if getattr(parsed, setting.action.dest, None) is None:  # not given as a flag
                setattr(parsed, setting.action.dest, self._env_value(setting))
                if setting.env in os.environ:
                    from_env[setting.action.option_strings[0]] = setting.env
        parsed.from_env = from_env  # flag -> the variable that gave its value
        return parsed, extras

    def _env_value(self, setting: _FromEnv) -> Any:
        given = os.environ.get(setting.env)
        text = setting.default if given is None else given
        if text is None:  # neither set nor defaulted
            return None
        try:
            value = setting.convert(text)
            choices = setting.action.choices
            if choices is not None and value not in choices:
                raise ValueError(f"choose from {', '.join(map(str, choices))}")
        except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
            if given is None:
                raise  # a default that does not fit its own flag: a bug, not a user's error
            flag = setting.action.option_strings[0]
            self._fail(f"{setting.env}={given!r} is not a valid value for {flag}: {_reason(setting.convert, error)}")
        return value


def named(args: argparse.Namespace, flag: str) -> str:
    """The flag as a message names it: by the environment variable that gave its value, if one did."""
    env = getattr(args, "from_env", {}).get(flag)
    return flag if env is None else f"{env} (the value of {flag})"


def _reason(convert: Callable[[str], Any], error: Exception) -> str:
    if convert in (int, float):  # their own messages repeat the value: say it as argparse does
        return f"invalid {convert.__name__} value"
    return str(error)


def _token_id(text: str) -> int:
    """A token's id as the stores keep them: a positive 64-bit integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{text!r} is no token's id (a whole number from 1 to {2**63 - 1:,})")
    return value


def build_parser() -> EnvParser:
    parser = EnvParser(
        prog="notes-api", description="The Notes REST API.",
        epilog="Run 'notes-api serve --help' for the server's options.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_flags(commands.add_parser(
        "serve", help="serve the HTTP API", description="Serve the HTTP API."
    ))
    migrate = commands.add_parser("migrate", help="apply pending database migrations",
                                  description="Apply pending migrations.")
    _database_flag(migrate)
    migrate.env_flag("--lock-timeout", "NOTES_LOCK_TIMEOUT", _shown(MIGRATION_LOCK_TIMEOUT),
                     "seconds to wait for a lock another process holds (another migration, or a long import"
                     " or export) before giving up, changing nothing", type=float)
    _log_flags(migrate)
    _account_commands(commands)
    _transfer_commands(commands)
    return parser


ON_CONFLICT_HELP = ("what to do with a note or token whose id the target has already: fail (default: import"
                    " nothing, naming the id), skip (keep the target's) or replace (take the imported one, with"
                    " a version the target never gave the note)")


def _transfer_commands(commands: argparse._SubParsersAction) -> None:
    """export, import and copy: a store's content to a file, from a file, or to another store."""
    export: EnvParser = commands.add_parser(
        "export", help="write a store's notes, owners and tokens to a file",
        description="Write the store's content as a notes file (JSON Lines, API.md), or its notes as a zip of"
        " Markdown files. Only the hashes of tokens are written, and only in a whole-store export.",
    )
    _database_flag(export)
    export.add_argument("--owner", action="append", metavar="NAME", help="only this owner's notes; repeat for more")
    export.add_argument("--output", "-o", metavar="FILE", help="default (or -): standard output")
    export.add_argument("--format", choices=("jsonl", "markdown"), default="jsonl",
                        help="jsonl (default): the notes file, for import; markdown: a zip of OWNER/ID-title.md"
                        " files with YAML front matter")
    _log_flags(export)
    imported: EnvParser = commands.add_parser(
        "import", help="load a notes file into a store, all of it or nothing",
        description="Load a notes file made by export into the store, keeping ids, versions, times, owners and"
        " tokens, in one transaction: a file that is cut short, altered or breaks a rule writes nothing.",
    )
    _database_flag(imported)
    imported.add_argument("--input", "-i", metavar="FILE", help="default (or -): standard input")
    imported.add_argument("--on-conflict", choices=("fail", "skip", "replace"), default="fail", help=ON_CONFLICT_HELP)
    _log_flags(imported)
    copy: EnvParser = commands.add_parser(
        "copy", help="copy every owner, token and note from one store to another",
        description="Copy a whole store into another one (migrated first, as serve would), in one transaction,"
        " then compare both sides record by record.",
    )
    # (from the environment, a URL's password stays out of `ps`, as serve's DATABASE_URL does)
    copy.env_flag("--from", "NOTES_COPY_FROM", None, "the store to copy", dest="source", metavar="URL")
    copy.env_flag("--to", "NOTES_COPY_TO", None, "the store to fill", dest="target", metavar="URL")
    copy.add_argument("--on-conflict", choices=("fail", "skip", "replace"), default="fail", help=ON_CONFLICT_HELP)
    copy.add_argument("--progress-every", type=float, default=5.0, metavar="SECONDS",
                      help="seconds between two progress lines when standard error is not a terminal (default 5;"
                      " on a terminal a progress bar is drawn)")
    _log_flags(copy)


def _leaf(group: argparse._SubParsersAction, name: str, **kwargs: Any) -> EnvParser:
    """An action of users, tokens or notes: it works on the store of --database-url."""
    parser: EnvParser = group.add_parser(name, **kwargs)
    _database_flag(parser)
    _log_flags(parser)
    return parser


def _account_commands(commands: argparse._SubParsersAction) -> None:
    """users, tokens and notes: run against the store of --database-url, as the server's is."""
    users = commands.add_parser("users", help="add, list and remove owners",
                                description="The owners of notes; `local` always exists.")
    user_commands = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _leaf(user_commands, "add", help="add an owner", description="Add an owner.")
    add.add_argument("name", help="1 to 64 of a-z 0-9 . _ -, starting with a letter or digit")
    _leaf(user_commands, "list", help="list the owners with their notes and tokens",
                             description="List the owners.")
    remove = _leaf(user_commands, "remove", help="remove an owner and its tokens",
                                      description="Remove an owner and its tokens.")
    remove.add_argument("name")
    remove.add_argument("--delete-notes", action="store_true", help="delete its notes too (else refused)")

    tokens = commands.add_parser("tokens", help="issue, list and revoke tokens",
                                 description="Bearer tokens: each acts for one owner.")
    token_commands = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = _leaf(token_commands, 
        "issue", help="issue a token and print it, alone, on standard output",
        description="Issue a token. It is printed once, alone on standard output: TOKEN=$(notes-api tokens issue"
        " alice). The service keeps only its hash.",
    )
    issue.add_argument("name", help="the owner the token acts for")
    issue.add_argument("--label", default="", help="what the token is for (a device, a script)")
    issue.add_argument("--scope", choices=("read", "write"), default="write", help="default write")
    issue.add_argument("--expires-in", type=int, metavar="DAYS", help="days until it expires; default never")
    listed = _leaf(token_commands, "list", help="list tokens (never their secrets)",
                                       description="List tokens, never their secrets.")
    listed.add_argument("name", nargs="?", help="only this owner's")
    revoke = _leaf(token_commands, "revoke", help="revoke a token", description="Revoke a token by its id.")
    revoke.add_argument("id", type=_token_id)

    notes = commands.add_parser("notes", help="hand notes from one owner to another",
                                description="Operations on notes of the store.")
    note_commands = notes.add_subparsers(dest="action", required=True, metavar="ACTION")
    move = _leaf(note_commands, "move", help="give every note of one owner to another",
                                    description="Give every note of one owner to another, in one transaction.")
    move.add_argument("--from", dest="source", required=True, metavar="OWNER")
    move.add_argument("--to", dest="target", required=True, metavar="OWNER")



def _serve_flags(serve: EnvParser) -> None:
    _database_flag(serve, served=True)
    serve.env_flag("--host", "NOTES_HOST", "127.0.0.1", "address to listen on")
    serve.env_flag("--port", "NOTES_PORT", "8080", "port to listen on; 0 picks a free one",
                   type=int)
    serve.env_flag("--workers", "NOTES_WORKERS", "1", "server processes sharing the port", type=int)
    serve.env_switch("--no-migrate", "NOTES_NO_MIGRATE",
                     "do not apply pending migrations at start-up; refuse a store that needs them")
    serve.env_flag("--pool-size", "NOTES_POOL_SIZE", _shown(_SERVICE.pool_size), "PostgreSQL connections per process",
                   type=int)
    serve.env_flag("--db-timeout", "NOTES_DB_TIMEOUT", _shown(_SERVICE.db_timeout),
                   "seconds to wait on the database before a 503", type=float)
    serve.env_flag("--max-body-bytes", "NOTES_MAX_BODY_BYTES", _shown(_SERVICE.max_body_bytes),
                   "largest request body", type=int)
    serve.env_flag("--max-import-bytes", "NOTES_MAX_IMPORT_BYTES", _shown(_SERVICE.max_import_bytes),
                   "largest body of POST /import", type=int)
    serve.env_flag("--body-timeout", "NOTES_BODY_TIMEOUT", _shown(_SERVICE.body_timeout),
                   "seconds a request body may take to arrive before a 408 and a closed connection",
                   type=float)
    serve.env_switch("--require-if-match", "NOTES_REQUIRE_IF_MATCH",
                     "answer 428 to PUT, PATCH and DELETE without If-Match")
    serve.env_flag("--cursor-secret", "NOTES_CURSOR_SECRET", _SERVICE.cursor_secret,
                   "key that signs listing cursors; none: a random key kept in the store")
    serve.env_flag("--auth", "NOTES_AUTH", _SERVICE.auth,
                   "required: every request needs a token; local: one without acts for the owner local;"
                   " auto: local when listening on loopback only, else required",
                   type=str.lower, choices=AUTH_MODES)
    serve.env_flag("--rate-limit", "NOTES_RATE_LIMIT", None,
                   "requests a second per owner and process, in bursts of twice that; none: no limit",
                   type=int)
    serve.env_flag("--keep-revisions", "NOTES_KEEP_REVISIONS", _shown(_SERVICE.keep_revisions),
                   "revisions kept of each note (at least 1)", type=int)
    serve.env_flag("--trash-days", "NOTES_TRASH_DAYS", _shown(_SERVICE.trash_days),
                   "days a deleted note stays in the trash before it is purged", type=int)
    serve.env_flag("--keep-changes-days", "NOTES_KEEP_CHANGES_DAYS", _shown(_SERVICE.keep_changes_days),
                   "days GET /changes goes back; an older token is 410", type=int)
    _log_flags(serve, served=True)
    serve.add_argument(
        "--cors-origin", action="append", metavar="ORIGIN",
        help="let browser pages of this origin call the API; repeat for more"
        " [env NOTES_CORS_ORIGINS, comma-separated; default none: no CORS headers]",
    )


def _database_flag(parser: EnvParser, *, served: bool = False) -> None:
    """The store; memory:// (the default) only for serve: no other command could see its notes."""
    if served:
        parser.env_flag("--database-url", "DATABASE_URL", _SERVICE.database_url,
                        f"where notes live: {SUPPORTED_URLS}")
    else:
        parser.env_flag("--database-url", "DATABASE_URL", _SERVICE.database_url,
                        "the store: sqlite:///relative.db, sqlite:////absolute.db, postgresql://user@host/db",
                        shown="none: give the server's store")


def _log_flags(parser: EnvParser, *, served: bool = False) -> None:
    parser.env_flag("--log-level", "NOTES_LOG_LEVEL", _LOGS.level,
                    f"debug, info{' (with the access log)' if served else ''}, warning or error",
                    type=str.lower, choices=LEVELS)
    parser.env_flag("--log-format", "NOTES_LOG_FORMAT", _LOGS.format,
                    "text, or json: one object per line", type=str.lower, choices=FORMATS)
