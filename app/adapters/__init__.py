"""Persistence adapters: one module per store, each satisfying the domain's ports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from app.domain.ports import Store

PoolUsage = Callable[[], tuple[int, int]]  # () -> (connections open, connections idle)
Followers = Callable[[], tuple[int, int]]  # () -> (followers of the changes feed, of them idle)


class Storage(Store, Protocol):
    """An open store as the container hands it to the application."""

    @property
    def cursor_secret(self) -> str:
        """A random secret made once per store and kept in it (memory: once per process), so
        every process of one deployment signs listing cursors alike and no one else can."""

    @property
    def pool_usage(self) -> PoolUsage | None:
        """How to read the connection pool's usage for /metrics; None for a store without one."""

    @property
    def followers(self) -> Followers:
        """How to read, for /metrics, how many followers of the changes feed (long polls and
        streams) this process has, and how many of them are idle, waiting for a change."""
