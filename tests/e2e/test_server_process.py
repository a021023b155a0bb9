"""The real server process: the tutorial's client, graceful stops, restarts and crashes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import threading
import time
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
    with postgres_database(postgres_server_url, "notes_e2e", postgres_template) as url:
        server = Server(url, tmp_path / "server.log").wait_ready()
        note = requests.post(f"{server.base}/notes", json={"title": "locked"}).json()
        locked, release, results = threading.Event(), threading.Event(), {}

        def hold_the_row() -> None:  # so that the server's UPDATE waits mid-request, until released
            async def hold() -> None:
                connection = await asyncpg.connect(url)
                async with connection.transaction():
                    await connection.execute("SELECT 1 FROM notes WHERE id = $1 FOR UPDATE", note["id"])
                    locked.set()
                    await asyncio.get_running_loop().run_in_executor(None, release.wait, 30)
                await connection.close()

            asyncio.run(hold())

        def put() -> None:
            response = requests.put(f"{server.base}/notes/{note['id']}", json={"title": "finished"}, timeout=20)
            results["status"] = response.status_code

        holder = threading.Thread(target=hold_the_row)
        holder.start()
        try:
            assert locked.wait(10)
            writer = threading.Thread(target=put)
            writer.start()
            until(lambda: _waiting_on_a_lock(url), "the server's UPDATE to wait for the row")
            server.process.send_signal(signal.SIGTERM)
            until(lambda: not _accepts(server.port), "the server to stop listening")  # stopping, PUT in flight
        finally:
            release.set()
        code = server.process.wait(20)
        writer.join()
        holder.join()
    assert results["status"] == 200
    assert code == 0, server.output()


def until(condition, what: str, within: float = 20) -> None:
    """Look again and again until `condition()` holds: an event of another process, which sends
    no signal of its own."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"waited {within} s for {what}"
        time.sleep(0.01)


def _waiting_on_a_lock(url: str) -> bool:
    async def look() -> bool:
        connection = await asyncpg.connect(url)
        try:
            return bool(await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ))
        finally:
            await connection.close()

    return asyncio.run(look())


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


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


def listening_processes(port: int, expected: int, within: float = 15) -> int:
    """How many processes listen on `port`, once `expected` do or `within` seconds pass."""
    deadline = time.monotonic() + within
    while True:
        listing = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True)
        count = len(set(re.findall(r"pid=(\d+)", listing.stdout)))
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def test_several_workers_share_one_port_and_stop_together(sql_database_url: str, tmp_path: Path) -> None:
    server = Server(sql_database_url, tmp_path / "server.log", "--workers", "2").wait_ready()
    try:
        created = [requests.post(f"{server.base}/notes", json={"title": f"w{i}"}).status_code for i in range(40)]
        assert created == [201] * 40
        assert len(requests.get(f"{server.base}/notes", params={"limit": 100}).json()["notes"]) == 40
        assert listening_processes(server.port, expected=2) == 2
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
            raw.sendall(b"GET /notes HTTP/1.1\r\nHost: x\r\nX-Probe: \x00\r\n\r\n")
            answer = raw.recv(4096)
        assert answer.split(b" ")[1] == b"400", answer
        assert requests.get(f"{server.base}/healthz").status_code == 200
    finally:
        assert server.stop() == 0
    output = server.output()
    assert "Traceback" not in output
    assert sum("Invalid header value char" in line for line in output.splitlines()) == 1
