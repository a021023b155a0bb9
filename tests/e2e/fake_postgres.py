"""A PostgreSQL server that refuses every password. The test server trusts every local user, so
it cannot produce a refused password; this one speaks just enough of the protocol to do so."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

SSL_REQUEST = 80877103
CLEARTEXT_PASSWORD = 3
REFUSAL = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user \"postgres\"\0\0"


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client left")
        data += chunk
    return data


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def _refuse(connection: socket.socket) -> None:
    """Startup (after declining SSL), a request for the password, then error 28P01."""
    length, code = struct.unpack("!ii", _read(connection, 8))
    if code == SSL_REQUEST:
        connection.sendall(b"N")
        length, code = struct.unpack("!ii", _read(connection, 8))
    _read(connection, length - 8)  # the user, the database and other parameters
    connection.sendall(_message(b"R", struct.pack("!i", CLEARTEXT_PASSWORD)))
    _kind, length = struct.unpack("!ci", _read(connection, 5))
    _read(connection, length - 4)  # the password: refused whatever it is
    connection.sendall(_message(b"E", REFUSAL))


def _answer(connection: socket.socket) -> None:
    with connection, suppress(OSError, struct.error):  # a client that leaves early is no failure
        _refuse(connection)


@contextmanager
def password_refusing_server() -> Iterator[int]:
    """The port of a server on 127.0.0.1 that refuses every login for a wrong password."""
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # shut down: the test is over
                return
            threading.Thread(target=_answer, args=(connection,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        listener.close()
        acceptor.join()
