"""Wake-ups for followers of the changes feed, within one process.

A follower registers its watch before it reads the log, then waits on it. A store calls
`changed(owner)` once a write of that owner's has committed (here, or in another process, as the
store learns it: LISTEN on PostgreSQL, `PRAGMA data_version` on SQLite), and every watch of that
owner wakes. A waiting follower holds no connection and runs no query: it is one event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class Watch:
    """One follower's wake-ups (the domain's `ChangeWatch`)."""

    def __init__(self, signals: ChangeSignals) -> None:
        self._signals = signals
        self._event = asyncio.Event()

    @property
    def closing(self) -> bool:
        return self._signals.closing

    def wake(self) -> None:
        self._event.set()

    async def wait(self, timeout: float, *, looking_again: bool = False) -> bool:
        if not self._event.is_set():
            idle = 0 if looking_again else 1  # counted as waiting only when not about to look again
            self._signals.waiting += idle
            try:
                async with asyncio.timeout(timeout):
                    await self._event.wait()
            except TimeoutError:
                return False
            finally:
                self._signals.waiting -= idle
        self._event.clear()
        return not self._signals.closing


class ChangeSignals:
    """The watches of one store, by owner. `first` runs when the first watch begins and `last`
    when the last one ends: a store starts and stops its way of hearing other processes there."""

    def __init__(self, first: Callable[[], None] | None = None, last: Callable[[], None] | None = None) -> None:
        self._watches: dict[str, set[Watch]] = {}
        self._count = 0
        self._first, self._last = first, last
        self.closing = False
        self.waiting = 0  # of the watches, those idle now: waiting for a wake-up, not to look again

    def followers(self) -> tuple[int, int]:
        """The followers watching now, and how many of them are idle, waiting for a change (for /metrics)."""
        return self._count, self.waiting

    @property
    def watched(self) -> bool:
        return self._count > 0

    @property
    def owners(self) -> frozenset[str]:
        return frozenset(self._watches)

    @asynccontextmanager
    async def watch(self, owner: str) -> AsyncIterator[Watch]:
        watch = Watch(self)
        self._watches.setdefault(owner, set()).add(watch)
        self._count += 1
        if self._count == 1 and self._first is not None:
            self._first()
        try:
            yield watch
        finally:
            watches = self._watches[owner]
            watches.discard(watch)
            if not watches:
                del self._watches[owner]
            self._count -= 1
            if self._count == 0 and self._last is not None:
                self._last()

    def changed(self, owner: str) -> None:
        for watch in self._watches.get(owner, ()):
            watch.wake()

    def changed_all(self) -> None:
        for watches in self._watches.values():
            for watch in watches:
                watch.wake()

    def close(self) -> None:
        """The store is closing: every follower stops waiting and answers with what it has."""
        self.closing = True
        self.changed_all()
