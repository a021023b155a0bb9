"""The operator's commands on a store: `users`, `tokens` and `notes move` (cli.py runs them).

Each opens the store of --database-url as the server does, through the container, and acts through
the same use cases as the HTTP API. What a person reads goes to standard error; standard output
carries only what a script wants: a token, alone, or the table asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TextIO

from app.container import build_container
from app.domain.accounts import AccountService
from app.domain.errors import OwnerNotFoundError
from app.domain.owners import Scope
from app.settings import Settings

Action = Callable[[AccountService, argparse.Namespace, TextIO, TextIO], Awaitable[None]]  # out, err


def run_account_command(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    action = ACTIONS[(args.command, args.action)]
    asyncio.run(_with_accounts(args, action, out, err))
    return 0


async def _with_accounts(args: argparse.Namespace, action: Action, out: TextIO, err: TextIO) -> None:
    container = build_container(Settings(database_url=args.database_url, pool_size=2))
    try:
        accounts = await container.accounts()  # type: ignore[misc]  # async: the storage opens here
        await action(accounts, args, out, err)
    finally:
        shutdown = container.shutdown_resources()
        if shutdown is not None:
            await shutdown


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")


async def _users_add(accounts: AccountService, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    await accounts.add_owner(args.name)
    err.write(f"added owner {args.name}; issue a token with `notes-api tokens issue {args.name}`\n")


async def _users_list(accounts: AccountService, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    owners = await accounts.owners()
    _table([["OWNER", "NOTES", "TOKENS"], *([o.name, str(o.notes), str(o.tokens)] for o in owners)], out)


async def _users_remove(accounts: AccountService, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    deleted = await accounts.remove_owner(args.name, delete_notes=args.delete_notes)
    notes = f", and its {deleted:,} note{'' if deleted == 1 else 's'}" if deleted else ""
    err.write(f"removed owner {args.name} and its tokens{notes}\n")


async def _tokens_issue(accounts: AccountService, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    if out is None:  # (a closed standard output: `>&-`)
        raise OSError("standard output is closed, so the token could not be shown: nothing was issued")
    issued = await accounts.issue_token(
        args.name, label=args.label, scope=Scope(args.scope), expires_in_days=args.expires_in
    )
    try:
        out.write(issued.secret + "\n")  # alone: TOKEN=$(notes-api tokens issue alice)
        out.flush()
    except OSError as error:  # a full disk, a closed pipe: the secret is lost, so the token goes
        await accounts.revoke_token(issued.token.id)
        raise OSError(f"the token could not be written to standard output ({error.strerror or error}),"
                      f" so token {issued.token.id} was revoked at once: run the command again") from None
    token = issued.token
    expiry = "never expires" if token.expires_at is None else f"expires {_when(token.expires_at)} UTC"
    err.write(
        f"issued token {token.id} ({token.scope}) for {token.owner}; it {expiry}."
        " It is shown only now: keep it safe.\n"
    )


async def _tokens_list(accounts: AccountService, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    if args.name is not None and args.name not in {owner.name for owner in await accounts.owners()}:
        raise OwnerNotFoundError(args.name)  # (an empty table said nothing of the typo)
    rows = [["ID", "OWNER", "LABEL", "SCOPE", "CREATED", "LAST USED", "EXPIRES"]]
    for t in await accounts.tokens(args.name):
        rows.append([str(t.id), t.owner, t.label or "-", str(t.scope), _when(t.created_at),
                     _when(t.last_used_at), _when(t.expires_at)])
    _table(rows, out)


async def _tokens_revoke(accounts: AccountService, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    await accounts.revoke_token(args.id)
    err.write(f"revoked token {args.id}; every server refuses it within 5 seconds\n")


async def _notes_move(accounts: AccountService, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
    if args.source == args.target:
        raise ValueError(f"--from and --to both name {args.source}: the notes are where they would go")
    logging.getLogger("app.accounts").debug("moving the notes of %s to %s", args.source, args.target)
    moved = await accounts.move_notes(args.source, args.target)
    err.write(f"moved {moved:,} note{'' if moved == 1 else 's'} from {args.source} to {args.target}\n")


ACTIONS: dict[tuple[str, str], Action] = {
    ("users", "add"): _users_add,
    ("users", "list"): _users_list,
    ("users", "remove"): _users_remove,
    ("tokens", "issue"): _tokens_issue,
    ("tokens", "list"): _tokens_list,
    ("tokens", "revoke"): _tokens_revoke,
    ("notes", "move"): _notes_move,
}
