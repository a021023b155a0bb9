"""Logs of a real `python -m app serve`: the access log, its formats and levels, and workers.

Also the CORS flags, which like the log flags are read from the command line or the environment.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.databases import sqlite_copy
from tests.e2e.processes import Server, run

pytestmark = pytest.mark.slow

TOKEN = "notes_s3cr3tToken" + "x" * 26  # token-shaped, unknown: 401
SECRETS = ("s3cr3tToken", "c00kie-value", "body-secret-words")


def send_requests(base: str, prefix: str) -> None:
    """A write with a cookie and a secret in its body, a read with an unknown token, an unknown
    path: known ids."""
    requests.post(
        f"{base}/notes",
        data=json.dumps({"title": "body-secret-words"}),
        headers={
            "X-Request-ID": f"{prefix}-post",
            "Cookie": "session=c00kie-value",
        },
    )
    requests.get(f"{base}/notes/1", headers={"X-Request-ID": f"{prefix}-get", "Authorization": f"Bearer {TOKEN}"})
    requests.get(f"{base}/nope", headers={"X-Request-ID": f"{prefix}-404"})


def wait_for(server: Server, text: str, count: int) -> None:
    """Until `text` occurs `count` times in the output: lines must come out while serving."""
    server.wait_for(text, count, timeout=15)


def test_each_request_is_one_json_line_and_every_line_is_json(tmp_path: Path) -> None:
    server = Server("memory://", tmp_path / "server.log", "--log-format", "json").wait_ready()
    try:
        send_requests(server.base, "e2e")
        wait_for(server, '"request_id":"e2e-', 3)
    finally:
        assert server.stop() == 0
    documents = [json.loads(line) for line in server.output().splitlines()]  # raises on any other line
    assert all({"time", "level", "logger"} <= set(d) for d in documents)
    access = {d["request_id"]: d for d in documents if d["logger"] == "app.access"}
    mine = sorted(
        (i, access[i]["method"], access[i]["path"], access[i]["status"]) for i in access if i.startswith("e2e-")
    )
    assert mine == [
        ("e2e-404", "GET", "/nope", 404),
        ("e2e-get", "GET", "/notes/1", 401),
        ("e2e-post", "POST", "/notes", 201),
    ]
    assert all(isinstance(access[i]["duration_ms"], float) and access[i]["bytes"] > 0 for i in access)
    assert any(d["logger"] == "app.server" and "serving on" in d["message"] for d in documents)
    assert not [secret for secret in SECRETS if secret in server.output()]


@pytest.mark.parametrize("how", [("--log-format", "json"), ("NOTES_LOG_FORMAT", "json")], ids=["flag", "environment"])
def test_with_json_logs_a_failing_command_ends_with_a_json_record_too(how: tuple[str, str], tmp_path: Path) -> None:
    """A collector that reads stderr as JSON lines parses the failure as well: one record at
    ERROR holding the line (and the lines after it) that text logs would show."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind":"header","format":"notes","version":1}\n{"kind":"nope"}\nnot json\n')
    flag, env = (list(how), None) if how[0].startswith("--") else ([], dict([how]))
    failures = [
        run("serve", "--database-url", "memory://", "--port", "99999", *flag, env=env),
        run("import", "--database-url", f"sqlite:///{tmp_path / 'notes.db'}", "--input", str(bad), *flag, env=env),
    ]
    texts = [run("serve", "--database-url", "memory://", "--port", "99999"),
             run("import", "--database-url", f"sqlite:///{tmp_path / 'text.db'}", "--input", str(bad))]
    for failure, text in zip(failures, texts, strict=True):
        assert failure.returncode == text.returncode != 0
        lines = failure.stderr.splitlines()
        record = json.loads(lines[-1])  # raises on a line of text
        assert [json.loads(line) for line in lines]  # and every line before it is a record too
        assert record["level"] == "ERROR" and {"time", "logger", "message"} <= set(record)
        said = text.stderr.removeprefix("notes-api: error: ").rstrip("\n")
        assert record["message"] == said.replace("text.db", "notes.db")
    assert "\n  line 3: " in json.loads(failures[1].stderr.splitlines()[-1])["message"]
    wrong = run("serve", "--port", "abc", *flag, env=env)  # before the flags are parsed: no usage text
    assert wrong.returncode == 2 and len(wrong.stderr.splitlines()) == 1, wrong.stderr
    assert json.loads(wrong.stderr)["message"] == (
        "argument --port: invalid int value: 'abc' (notes-api serve --help shows the usage)")


def test_with_json_logs_what_a_command_reports_is_json_records(tmp_path: Path, sqlite_template: Path) -> None:
    url = sqlite_copy(sqlite_template, tmp_path / "notes.db")
    added = run("users", "add", "ann", "--database-url", url, "--log-format", "json")
    exported = run("export", "--database-url", url, env={"NOTES_LOG_FORMAT": "json"})
    assert added.returncode == exported.returncode == 0, added.stderr + exported.stderr
    records = [json.loads(line) for line in (added.stderr + exported.stderr).splitlines()]
    assert [(r["level"], r["logger"], r["message"].split(" ")[0]) for r in records] == [
        ("INFO", "app.cli", "added"), ("INFO", "app.cli", "exported")]
    assert records[1]["message"] == "exported 2 owners, 0 tokens and 0 notes to standard output"
    assert exported.stdout.startswith('{"kind":"header"')  # the export itself is untouched


def test_text_is_the_default_and_warning_turns_the_access_log_off(tmp_path: Path) -> None:
    chatty = Server("memory://", tmp_path / "info.log").wait_ready()
    quiet = Server("memory://", tmp_path / "warning.log", "--log-level", "warning").wait_ready()
    try:
        for server in (chatty, quiet):
            send_requests(server.base, "txt")
        wait_for(chatty, "request_id=txt-", 3)
    finally:  # a graceful stop flushes the access lines still waiting, so none can come later

        assert chatty.stop() == 0 and quiet.stop() == 0
    line = r"Z INFO app\.access: request_id=txt-get method=GET path=/notes/1 status=401 owner=- "
    assert re.search(line, chatty.output())
    assert "app.access" not in quiet.output() and "serving on" not in quiet.output()


def test_every_worker_process_logs_in_the_chosen_format(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'notes.db'}"
    server = Server(url, tmp_path / "server.log", "--workers", "2", "--log-format", "json").wait_ready()
    try:
        wait_for(server, "serving on", 2)  # /readyz answers as soon as one of them serves
        for index in range(20):
            requests.get(f"{server.base}/healthz", headers={"X-Request-ID": f"worker-{index}"})
        wait_for(server, '"request_id":"worker-', 20)
    finally:
        assert server.stop() == 0
    documents = [json.loads(line) for line in server.output().splitlines()]
    assert len([d for d in documents if d["logger"] == "app.server" and "serving on" in d["message"]]) == 2


def test_cors_origins_come_from_the_environment_and_flags_replace_them(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NOTES_CORS_ORIGINS", "https://a.example, https://b.example")
    from_env = Server("memory://", tmp_path / "env.log").wait_ready()
    from_flag = Server("memory://", tmp_path / "flag.log", "--cors-origin", "https://c.example").wait_ready()
    try:

        def allowed(server: Server, origin: str) -> str | None:
            return requests.get(f"{server.base}/healthz", headers={"Origin": origin}).headers.get(
                "Access-Control-Allow-Origin"
            )

        assert [allowed(from_env, o) for o in ("https://a.example", "https://b.example", "https://c.example")] == [
            "https://a.example",
            "https://b.example",
            None,
        ]
        assert [allowed(from_flag, o) for o in ("https://a.example", "https://c.example")] == [
            None,
            "https://c.example",
        ]
    finally:
        assert from_env.stop() == 0 and from_flag.stop() == 0


def test_an_origin_that_is_not_an_origin_stops_the_server_before_it_starts() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--database-url", "memory://", "--cors-origin", "notes.example/app"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "scheme://host[:port]" in result.stderr


def test_a_stream_a_follower_leaves_is_logged_with_what_was_sent_and_for_how_long(tmp_path: Path) -> None:
    """The changes' events are sent after the pipeline has timed the request: their line said a
    few milliseconds and bytes=0 however long the follower stayed and whatever it got."""
    server = Server("memory://", tmp_path / "server.log").wait_ready()
    try:
        with requests.get(f"{server.base}/changes", headers={"Accept": "text/event-stream"}, stream=True,
                          timeout=10) as follower:
            chunks = follower.iter_content(chunk_size=None)
            received = next(chunks)  # the retry hint
            held_from = time.monotonic()
            for n in range(20):  # the follower stays for twenty changes, each seen before the next is made
                title = f"note {n} ".encode()
                assert requests.post(f"{server.base}/notes", json={"title": title.decode()}, timeout=10).ok
                while title not in received:
                    received += next(chunks)
            held = time.monotonic() - held_from
        # the next change finds the follower gone, and the stream ends
        assert requests.post(f"{server.base}/notes", json={"title": "after"}, timeout=10).status_code == 201
        line = server.wait_for("path=/changes status=200")
    finally:
        assert server.stop() == 0
    logged = dict(field.split("=", 1) for field in line.split() if "=" in field)
    assert int(logged["bytes"]) >= len(received), line  # (and the headers)
    assert float(logged["duration_ms"]) >= held * 1000 - 1, (line, held)  # (aiohttp's clock: whole ms)
