"""The real server process: the tutorial's client, graceful stops, restarts and crashes."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import re
import signal
import socket
import sqlite3
import subprocess
import threading
from pathlib import Path

import asyncpg
import pytest
import requests

from tests.databases import postgres_database
from tests.e2e.processes import Server, free_port

pytestmark = pytest.mark.slow


def test_the_tutorials_client_calls_work_against_a_real_server(any_database_url: str, tmp_path: Path) -> None:
    server = Server(any_database_url, tmp_path / "server.log").wait_ready()
    try:
        base = server.base
        # The tutorial's calls, unchanged: bodies as strings, so no Content-Type is sent.
        created = requests.post(
            f"{base}/notes",
            data=json.dumps(
                {
                    "title": "note two",
                    "created_at": "2017-08-23 00:00",
                    "created_by": "apcelent",
                    "description": "sample notes",
                    "priority": 4,
                }
            ),
        )
        assert created.status_code == 201
        note_id = created.json()["id"]
        assert created.headers["Location"] == f"/notes/{note_id}"
        edited = requests.put(
            f"{base}/notes/{note_id}",
            data=json.dumps(
                {
                    "title": "note two edited",
                    "created_at": "2017-08-23 00:00",
                    "created_by": "apcelent",
                    "description": "sample notes, edited",
                    "priority": 5,
                }
            ),
        )
        assert edited.status_code == 200 and edited.json()["version"] == 2
        listed = requests.get(f"http://127.0.0.1:{server.port}/notes").json()
        assert [n["title"] for n in listed["notes"]] == ["note two edited"]
        assert requests.delete(f"{base}/notes/{note_id}").status_code == 204
        assert requests.get(f"{base}/notes").json()["notes"] == []
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.output()
    assert "Traceback" not in server.output()


def test_sigterm_lets_a_request_in_flight_finish_then_exits_zero(
    postgres_server_url: str, postgres_template: str, tmp_path: Path
) -> None:
    """A DELETE that waits for its row, held by another transaction, when SIGTERM arrives: the
    server says it is stopping, the row is let go, and the DELETE still writes and answers."""
    with postgres_database(postgres_server_url, "notes_e2e", postgres_template) as url:
        server = Server(url, tmp_path / "server.log").wait_ready()
        note = requests.post(f"{server.base}/notes", json={"title": "in flight"}).json()
        locked, release = threading.Event(), threading.Event()

        def hold_the_row() -> None:  # until released: the server's DELETE waits for it mid-request
            async def hold() -> None:
                connection = await asyncpg.connect(url)
                async with connection.transaction():
                    await connection.execute("SELECT 1 FROM notes WHERE id = $1 FOR UPDATE", note["id"])
                    locked.set()
                    await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
                await connection.close()

            asyncio.run(hold())

        holder = threading.Thread(target=hold_the_row)
        holder.start()
        try:
            assert locked.wait(10)
            with socket.create_connection(("127.0.0.1", server.port), timeout=20) as client:
                # no body to read: once the server has said 100 Continue, its handler runs on to the row
                client.sendall(f"DELETE /notes/{note['id']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Content-Length: 0\r\nExpect: 100-continue\r\n\r\n".encode())
                assert client.recv(100).startswith(b"HTTP/1.1 100")
                server.process.send_signal(signal.SIGTERM)
                server.wait_for("stopping: requests in flight")  # stopping, the DELETE in flight
                release.set()
                answer = client.recv(1000)
        finally:
            release.set()
            holder.join()
        assert answer.startswith(b"HTTP/1.1 204"), answer
        assert server.process.wait(20) == 0, server.output()
        trashed = asyncio.run(_trashed(url))
    assert trashed == [note["id"]]


async def _trashed(url: str) -> list[int]:
    connection = await asyncpg.connect(url)
    try:
        return [row[0] for row in await connection.fetch("SELECT id FROM trash")]
    finally:
        await connection.close()


def test_ctrl_c_stops_the_server_cleanly(tmp_path: Path) -> None:
    server = Server("memory://", tmp_path / "server.log").wait_ready()
    assert server.stop(signal.SIGINT) == 0, server.output()


def test_notes_survive_a_restart_unchanged(sql_database_url: str, tmp_path: Path) -> None:
    server = Server(sql_database_url, tmp_path / "first.log").wait_ready()
    written = [
        requests.post(f"{server.base}/notes", json={"title": f"n{i}", "tags": ["x", f"t{i}"]}).json() for i in range(20)
    ]
    assert server.stop() == 0
    again = Server(sql_database_url, tmp_path / "second.log", port=server.port).wait_ready()
    try:
        assert requests.get(f"{again.base}/notes").json()["notes"] == written
    finally:
        assert again.stop() == 0


def test_every_acknowledged_write_survives_kill_9(sql_database_url: str, tmp_path: Path) -> None:
    server = Server(sql_database_url, tmp_path / "first.log").wait_ready()
    acknowledged = []
    for i in range(50):
        response = requests.post(f"{server.base}/notes", json={"title": f"n{i}"})
        assert response.status_code == 201
        acknowledged.append(response.json())
    server.stop(signal.SIGKILL)
    again = Server(sql_database_url, tmp_path / "second.log").wait_ready()
    try:
        assert requests.get(f"{again.base}/notes", params={"limit": 500}).json()["notes"] == acknowledged
    finally:
        again.stop()


def test_a_sqlite_store_left_with_a_hot_journal_by_a_killed_writer_is_rolled_back_and_served(
    hot_journal_store: Path, tmp_path: Path
) -> None:
    """Only a read-write opening rolls back a hot journal: the start's read-only look cannot, and
    leaves the store to the migration, which opens it so (it once refused the store instead)."""
    server = Server(f"sqlite:///{hot_journal_store}", tmp_path / "server.log").wait_ready()
    try:
        assert requests.get(f"{server.base}/notes").json()["notes"] == []
    finally:
        assert server.stop() == 0, server.output()
    with contextlib.closing(sqlite3.connect(hot_journal_store)) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half_written'").fetchall() == []


def test_two_servers_starting_together_on_an_empty_database_both_come_up(
    empty_sql_database_url: str, tmp_path: Path
) -> None:
    servers = [Server(empty_sql_database_url, tmp_path / f"s{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        requests.post(f"{servers[0].base}/notes", json={"title": "shared"})
        assert requests.get(f"{servers[1].base}/notes").json()["notes"][0]["title"] == "shared"
    finally:
        for server in servers:
            server.kill()


def test_an_unknown_database_scheme_fails_start_up_with_one_clear_line(tmp_path: Path) -> None:
    server = Server("mysql://root@localhost/notes", tmp_path / "server.log")
    assert server.process.wait(20) == 2
    output = server.output().strip()
    assert len(output.splitlines()) == 1
    assert "memory://" in output and "sqlite://" in output and "postgresql://" in output


def test_an_unreachable_database_fails_start_up_with_one_clear_line(tmp_path: Path) -> None:
    server = Server(f"postgresql://postgres@127.0.0.1:{free_port()}/none", tmp_path / "server.log")
    assert server.process.wait(30) == 1
    output = server.output().strip()
    assert len(output.splitlines()) == 1 and "Traceback" not in output


def listening_processes(port: int) -> int:
    listing = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
    return len(set(re.findall(r"pid=(\d+)", listing.stdout)))


def test_several_workers_share_one_port_and_stop_together(sql_database_url: str, tmp_path: Path) -> None:
    server = Server(sql_database_url, tmp_path / "server.log", "--workers", "2").wait_ready()
    try:
        created = [requests.post(f"{server.base}/notes", json={"title": f"w{i}"}).status_code for i in range(40)]
        assert created == [201] * 40
        assert len(requests.get(f"{server.base}/notes", params={"limit": 100}).json()["notes"]) == 40
        server.wait_for("serving on", count=2)  # each worker says so once it listens
        assert listening_processes(server.port) == 2
    finally:
        code = server.stop()
    assert code == 0, server.output()


def test_memory_refuses_several_workers_with_a_clear_message(tmp_path: Path) -> None:
    server = Server("memory://", tmp_path / "server.log", "--workers", "2")
    assert server.process.wait(20) == 2
    output = server.output().strip()
    assert len(output.splitlines()) == 1 and "memory://" in output and "--workers" in output


def test_a_malformed_request_is_a_400_and_one_log_line_without_a_traceback(tmp_path: Path) -> None:
    server = Server("memory://", tmp_path / "server.log").wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(b"GET /notes HTTP/1.1\r\nHost: localhost\r\nX-Probe: \x00\r\n\r\n")
            answer = raw.recv(4096)
        assert answer.split(b" ")[1] == b"400", answer
        assert requests.get(f"{server.base}/healthz").status_code == 200
    finally:
        assert server.stop() == 0
    output = server.output()
    assert "Traceback" not in output
    assert sum("Invalid header value char" in line for line in output.splitlines()) == 1


def test_a_client_that_goes_away_mid_body_or_sends_a_damaged_one_is_no_error_of_the_server(tmp_path: Path) -> None:
    """Each was logged as an unhandled error with a traceback, as often as any client liked: a
    body the client gave up on (counted as a 500 too), and a damaged gzip body that no handler
    read (aiohttp read it after the answer). The server's own settings, not the test server's,
    which cancels a handler whose client is gone."""
    server = Server("memory://", tmp_path / "server.log").wait_ready()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(b'POST /notes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n'
                        b'Content-Length: 100\r\n\r\n{"ti')
        server.wait_for("method=POST path=/notes status=400")
        packed = bytearray(gzip.compress(b'{"title": "t"}' + b" " * 5000))
        packed[-8] ^= 0xFF  # its CRC
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(b"POST /nowhere HTTP/1.1\r\nHost: localhost\r\nContent-Encoding: gzip\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(packed), packed))
            answer = b"".join(iter(lambda: raw.recv(65536), b""))  # to the end: the server closes it
        assert answer.startswith(b"HTTP/1.1 404 ") and b"Connection: close" in answer, answer
        server.wait_for("method=POST path=/nowhere status=404")
        with socket.create_connection(("127.0.0.1", server.port)) as raw:  # an answer If-Match makes a 412
            raw.sendall(b'GET /notes HTTP/1.1\r\nHost: localhost\r\nIf-Match: "nope"\r\nContent-Encoding: gzip\r\n'
                        b"Content-Length: %d\r\n\r\n%s" % (len(packed), packed[:5]))
            answer = b"".join(iter(lambda: raw.recv(65536), b""))  # closed, not left open with its parser dead
        assert answer.startswith(b"HTTP/1.1 412 ") and b"Connection: close" in answer, answer
    finally:
        assert server.stop() == 0
    output = server.output()
    assert "Traceback" not in output and " ERROR " not in output, output
