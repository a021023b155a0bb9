"""Several server processes on one database: If-Match and Idempotency-Key hold across them."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.e2e.processes import Server

pytestmark = pytest.mark.slow


@pytest.fixture
def two_servers(sql_database_url: str, tmp_path: Path):
    first = Server(sql_database_url, tmp_path / "first.log").wait_ready()
    second = Server(sql_database_url, tmp_path / "second.log").wait_ready()
    yield first, second
    for server in (first, second):
        assert server.stop() == 0, server.output()


def test_of_many_puts_with_one_if_match_across_processes_exactly_one_wins(two_servers) -> None:
    first, second = two_servers
    note = requests.post(f"{first.base}/notes", json={"title": "contended"}).json()

    def put(i: int) -> int:
        server = (first, second)[i % 2]
        return requests.put(f"{server.base}/notes/{note['id']}", json={"title": f"writer {i}"},
                            headers={"If-Match": '"1"'}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(put, range(32)))
    assert statuses == {200: 1, 412: 31}
    assert requests.get(f"{second.base}/notes/{note['id']}").json()["version"] == 2


def test_one_idempotency_key_sent_to_both_processes_at_once_makes_one_note(two_servers) -> None:
    first, second = two_servers

    def post(i: int) -> int:
        server = (first, second)[i % 2]
        return requests.post(f"{server.base}/notes", json={"title": "once"},
                             headers={"Idempotency-Key": "across-processes"}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = Counter(pool.map(post, range(32)))
    assert set(statuses) <= {201, 409} and statuses[201] >= 1
    assert len(requests.get(f"{first.base}/notes").json()["notes"]) == 1
