"""What is measured: the scenarios, the requests each side gets, and the targets to meet.

Ratio scenarios run the service and its ceiling under the same load (`connections` in flight).
Latency probes run the service alone with one connection, so that p50 is the time a request
takes, not the time it queues: the search (`q`) and every sort's first page against its page at
90% depth. Their cursors are made here with the service's own CursorCodec and default secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.owners import LOCAL
from app.domain.query import ListQuery, Sort, SortField, SortKey
from app.entrypoints.http.listing import CursorCodec
from bench import data
from bench.loadgen import Request
from bench.stores import Seeded

CURSOR_SECRET = "notes-cursor"  # the service's default --cursor-secret
DEPTH = 0.9
PAGE = 50
TARGETS = {
    "q_p50_ms": 50.0,  # GET /notes?q=<word in 1% of notes>, p50, SQL stores at 100,000 notes
    "depth_ratio": 1.2,  # p50 of the page at 90% depth / p50 of the first page
    "scale_ratio": 1.2,  # POST p50 at 1,000,000 notes / at 1,000 notes
    "rss_mb": 100.0,  # the worker's peak RSS while a client walks 1,000,000 notes
    "owners_ratio": 1.2,  # an owner's page p50 among 100 owners / the single owner's of as many notes
    "copy_s": 60.0,  # notes-api copy of 1,000,000 notes, SQLite -> PostgreSQL and back, each
    "copy_rss_mb": 150.0,  # the copy process's peak RSS
    "export_notes_per_s": 50_000,  # GET /export of 100,000 notes
    "feed_changes_per_s": 20_000,  # GET /changes read from its start at full speed, pages of 1,000
}
PROBE_SORTS = ("id", "created_at", "-updated_at", "priority", "title")
_COLUMN = {  # where each sort's value sits in a stores.SortRow
    SortField.ID: 0, SortField.CREATED_AT: 1, SortField.UPDATED_AT: 2, SortField.PRIORITY: 3,
    SortField.TITLE: 4,
}


@dataclass(frozen=True)
class Scenario:
    """One ratio scenario: the same work asked of the service and of its ceiling."""

    name: str
    service: Request
    ceiling: Request


@dataclass(frozen=True)
class Probe:
    """One latency probe of the service: `request`, compared with `baseline` when there is one."""

    name: str
    request: Request
    baseline: Request | None = None


def read_scenarios(seeded: Seeded, quick: bool) -> list[Scenario]:
    by_id = Request("GET", "/notes/{id}", ids=seeded.count)
    first = Request("GET", f"/notes?limit={PAGE}")
    scenarios = [Scenario("get", by_id, by_id), Scenario("list", first, first)]
    if not quick:
        key = depth_key(seeded, Sort())
        scenarios.append(Scenario(
            "list-90%",
            Request("GET", f"/notes?limit={PAGE}&cursor={cursor(Sort(), key)}"),
            Request("GET", f"/notes?limit={PAGE}&after={key[1]}"),
        ))
    return scenarios


def write_scenarios(seeded: Seeded, quick: bool) -> list[Scenario]:
    """Run after the reads and probes: POST adds notes, PUT moves them in updated_at order."""
    body = data.request_body()
    post = Request("POST", "/notes", body=body)
    put = Request("PUT", "/notes/{id}", ids=seeded.count, body=body)
    # A merge patch reads and writes the note as a PUT does: the ceiling's PUT is its ceiling.
    patch = Request("PATCH", "/notes/{id}", ids=seeded.count, body=b'{"priority": 3}')
    return [Scenario("put", put, put), Scenario("patch", patch, put), Scenario("post", post, post)]


def probes(seeded: Seeded) -> list[Probe]:
    found = [Probe("q", Request("GET", f"/notes?q={data.MARKER}&limit={PAGE}"))]
    for text in PROBE_SORTS:
        sort = Sort(SortField(text.lstrip("-")), descending=text.startswith("-"))
        first = f"/notes?limit={PAGE}&sort={text}"
        depth = f"{first}&cursor={cursor(sort, depth_key(seeded, sort))}"
        found.append(Probe(f"sort={text}", Request("GET", depth), Request("GET", first)))
    return found


def depth_key(seeded: Seeded, sort: Sort, fraction: float = DEPTH) -> SortKey:
    """The sort key of the note at `fraction` of the listing: a cursor after it starts there."""
    column = _COLUMN[sort.field]
    ordered = sorted(seeded.rows, key=lambda row: (row[column], row[0]), reverse=sort.descending)
    row = ordered[int(len(ordered) * fraction) - 1]
    return (row[column], row[0])


def cursor(sort: Sort, after: SortKey) -> str:
    """The cursor the service would hand out for the page after `after`, unfiltered."""
    return CursorCodec(CURSOR_SECRET).encode(LOCAL, ListQuery(sort=sort), after)
