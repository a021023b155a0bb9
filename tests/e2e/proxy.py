"""A TCP proxy in front of PostgreSQL that a test can cut, black-hole and restore."""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        # asyncio holds a connection's handler only through its client transport, and not at all
        # once that transport stops reading: a handler left waiting on the database side could be
        # collected as garbage mid-connection, with its sockets open (an "unclosed transport"
        # warning in whichever test the collector ran). The proxy holds every handler itself.
        self._handlers: set[asyncio.Task[None]] = set()
        self.black_hole = False  # accept, then never answer
        self.black_hole_after: int | None = None  # or only the connections after this many
        self.accepted = 0  # connections accepted so far
        self._news = asyncio.Condition()  # notified on each one

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Refuse new connections and break every open one, as a database crash would; returns once
        every handler that had started has ended with its sockets closed. (One accepted in the
        same instant may start later: it finds the proxy cut and closes its connection at once.)"""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()
        if server is not None:  # (from Python 3.12 on, this waits for its connections: aborted first)
            await server.wait_closed()
        # Each handler ends on its broken connection, having closed its sockets (an aborted
        # transport's socket closes on the loop's next turn, before the handler's end is announced).
        while self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)

    async def restore(self) -> None:
        self.black_hole = False
        await self.start()

    async def wait_accepted(self, count: int) -> None:
        """Until `count` connections have been accepted in all."""
        async with self._news:
            await self._news.wait_for(lambda: self.accepted >= count)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A connection accepted just before a cut may be served only after it (Python 3.11's
        # Server.wait_closed does not wait for them): it is cut too, and so is every connection
        # when its handler ends, so that none is left open for the garbage collector to find.
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        handler.add_done_callback(self._handlers.discard)
        self._links.add(writer)
        async with self._news:
            self.accepted += 1
            self._news.notify_all()
        try:
            if self._server is None:
                return
            if self.black_hole or (self.black_hole_after is not None and self.accepted > self.black_hole_after):
                with contextlib.suppress(OSError):
                    await reader.read()  # swallow everything, answer nothing
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                return
            self._links.add(up_writer)
            try:
                if self._server is not None:  # not cut meanwhile
                    await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
            finally:
                self._drop(up_writer)
        finally:
            self._drop(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                if self.black_hole:
                    continue
                writer.write(data)
                await writer.drain()
        self._drop(writer)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()
        self._links.discard(writer)
