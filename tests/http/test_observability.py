"""X-Request-ID on every response, and the Prometheus metrics at GET /metrics."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from app.container import build_container, http_app
from app.entrypoints.http.metrics import RequestMetrics, pool_gauge
from tests.conftest import settings_for
from tests.http.support import create, problem, send

GENERATED_ID = re.compile(r"[0-9a-f]{12}-[0-9]+")


@pytest.fixture
async def memory_client(make_client):
    return await make_client("memory://")


async def metrics_of(client) -> dict[str, dict[tuple, float]]:
    """Every sample of GET /metrics: name -> {sorted label pairs: value}."""
    response = await client.get("/metrics")
    assert response.status == 200
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def requests_total(samples, route: str, method: str, status: int) -> float:
    key = (("method", method), ("route", route), ("status", str(status)))
    return samples["notes_http_requests_total"].get(key, 0)


async def test_a_request_without_an_id_gets_a_new_one_on_its_response(memory_client) -> None:
    first = await memory_client.get("/healthz")
    second = await memory_client.get("/healthz")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert all(GENERATED_ID.fullmatch(id_) for id_ in ids), ids
    assert ids[0] != ids[1]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/healthz", None, 200),
        ("GET", "/notes/12345", None, 404),
        ("GET", "/no/such/path", None, 404),
        ("DELETE", "/notes", None, 405),
        ("POST", "/notes", {"title": ""}, 422),
        ("POST", "/notes", {"title": "ok"}, 201),
    ],
)
async def test_a_valid_client_request_id_comes_back_unchanged_on_success_and_error(
    memory_client, method: str, path: str, body: object, status: int
) -> None:
    sent = "client-42_{trace}:7f/ABC"
    response = await send(memory_client, method, path, body, headers={"X-Request-ID": sent})
    assert response.status == status
    assert response.headers["X-Request-ID"] == sent


@pytest.mark.parametrize("sent", ["", "x" * 201, "two words", "caf\u00e9"])
async def test_an_unacceptable_client_request_id_is_replaced_by_a_new_one(memory_client, sent: str) -> None:
    response = await memory_client.get("/healthz", headers={"X-Request-ID": sent})
    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])


def app_with_plain_routes() -> web.Application:
    """The production application, plus routes added the plain aiohttp way."""

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPPermanentRedirect("/notes")

    async def broken(request: web.Request) -> web.Response:
        raise ValueError("a bug")

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": "world"})

    app = http_app(build_container(settings_for("memory://")))
    app.router.add_get("/old", moved)
    app.router.add_get("/broken", broken)
    app.router.add_get("/hello", hello)
    return app


async def test_a_redirect_a_handler_raises_goes_out_as_raised_with_a_request_id(aiohttp_client) -> None:
    client = await aiohttp_client(app_with_plain_routes())
    response = await client.get("/old", allow_redirects=False)
    assert response.status == 308 and response.headers["Location"] == "/notes"
    assert GENERATED_ID.fullmatch(response.headers["X-Request-ID"])


async def test_a_route_added_the_plain_aiohttp_way_gets_the_whole_pipeline(aiohttp_client) -> None:
    client = await aiohttp_client(app_with_plain_routes())
    ok = await client.get("/hello")
    assert ok.status == 200 and GENERATED_ID.fullmatch(ok.headers["X-Request-ID"])
    await problem(await client.get("/hello", headers={"Accept": "text/html"}), 406)
    document = await problem(await client.get("/broken"), 500)
    assert "a bug" not in document["detail"]
    await problem(await client.post("/hello"), 405)
    options = await client.options("/hello")
    assert options.status == 204 and options.headers["Allow"] == "GET, HEAD, OPTIONS"
    samples = await metrics_of(client)
    assert requests_total(samples, "/hello", "GET", 200) == 1
    assert requests_total(samples, "/hello", "GET", 406) == 1
    assert requests_total(samples, "/broken", "GET", 500) == 1


def test_no_private_aiohttp_name_is_used_by_the_service() -> None:
    source = "\n".join(p.read_text() for p in Path("app").rglob("*.py"))
    assert not re.search(r"\._(match|handler|handle|make_request|middlewares|router)\b", source)


async def test_a_request_id_of_200_visible_characters_is_accepted(memory_client) -> None:
    sent = "~" * 200
    assert (await memory_client.get("/healthz", headers={"X-Request-ID": sent})).headers["X-Request-ID"] == sent


async def test_metrics_count_requests_by_route_template_method_and_status(memory_client) -> None:
    note = await create(memory_client)
    for _ in range(2):
        assert (await memory_client.get(f"/notes/{note['id']}")).status == 200
    await problem(await memory_client.get("/notes/999"), 404)
    await problem(await memory_client.get("/not/a/route"), 404)
    await problem(await memory_client.get("/another/one"), 404)
    await problem(await memory_client.delete("/notes"), 405)
    await problem(await memory_client.request("PROPFIND", "/notes"), 501)
    samples = await metrics_of(memory_client)
    assert requests_total(samples, "/notes", "POST", 201) == 1
    assert requests_total(samples, "/notes/{id}", "GET", 200) == 2
    assert requests_total(samples, "/notes/{id}", "GET", 404) == 1
    assert requests_total(samples, "unmatched", "GET", 404) == 2  # every path that matched no route
    assert requests_total(samples, "unmatched", "DELETE", 405) == 1
    assert requests_total(samples, "unmatched", "other", 501) == 1  # WebDAV and the like: one label
    routes = {dict(labels)["route"] for labels in samples["notes_http_requests_total"]}
    assert not routes & {f"/notes/{note['id']}", "/notes/999", "/not/a/route", "/another/one"}


def test_a_route_of_every_method_counts_each_method_apart() -> None:
    """The pipeline finds a route's counts by the route alone (`by_route`), which holds only
    routes of one method: a route of "*" never goes there, not even after a request whose method
    is "*" (which aiohttp's pure-Python parser lets through), else every method would count under
    the first one's."""

    async def anything(request: web.Request) -> web.Response:
        return web.Response()

    route = web.UrlDispatcher().add_route("*", "/anything", anything)
    metrics = RequestMetrics()
    get, star, post = (metrics.statuses(route, method) for method in ("GET", "*", "POST"))
    assert metrics.statuses(route, "GET") is get and len({id(get), id(star), id(post)}) == 3
    assert route not in metrics.by_route
    assert set(metrics.series) == {("/anything", "GET"), ("/anything", "other"), ("/anything", "POST")}


async def test_metrics_expose_a_latency_histogram_per_route(memory_client) -> None:
    note = await create(memory_client)
    for _ in range(3):
        await memory_client.get(f"/notes/{note['id']}")
    await memory_client.get("/notes/999")
    samples = await metrics_of(memory_client)
    route = (("method", "GET"), ("route", "/notes/{id}"))
    buckets = {
        dict(labels)["le"]: value
        for labels, value in samples["notes_http_request_duration_seconds_bucket"].items()
        if tuple(pair for pair in labels if pair[0] != "le") == route
    }
    counts = [buckets[le] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts) and buckets["+Inf"] == 4  # cumulative, 200s and the 404 alike
    assert samples["notes_http_request_duration_seconds_count"][route] == 4
    assert 0 < samples["notes_http_request_duration_seconds_sum"][route] < 10


async def test_metrics_are_prometheus_text_whatever_the_accept_header_says(memory_client) -> None:
    response = await memory_client.get("/metrics", headers={"Accept": "application/json"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE notes_http_requests_total counter" in await response.text()


async def test_each_application_counts_only_its_own_requests(make_client) -> None:
    busy, quiet = await make_client("memory://"), await make_client("memory://")
    for _ in range(3):
        await busy.get("/healthz")
    await quiet.get("/healthz")
    assert requests_total(await metrics_of(busy), "/healthz", "GET", 200) == 3
    assert requests_total(await metrics_of(quiet), "/healthz", "GET", 200) == 1


async def test_the_database_pool_is_reported_where_there_is_one(client, database_url: str) -> None:
    await create(client)
    pool = (await metrics_of(client)).get("notes_db_pool_connections", {})
    if not database_url.startswith("postgresql"):
        assert pool == {}  # memory and SQLite hold no pool of connections
        return
    in_use, idle = pool[(("state", "in_use"),)], pool[(("state", "idle"),)]
    assert in_use == 0 and idle >= 1  # between requests, every open connection is idle


def test_the_pool_gauge_counts_open_connections_that_are_not_idle_as_in_use() -> None:
    family = next(pool_gauge(lambda: (4, 1)).collect())
    assert {sample.labels["state"]: sample.value for sample in family.samples} == {"in_use": 3, "idle": 1}


def followers(samples: dict[str, dict[tuple, float]]) -> dict[str, float]:
    return {labels[0][1]: int(value) for labels, value in samples["notes_changes_followers"].items()}


async def test_the_followers_of_the_changes_feed_are_counted_idle_and_active(client) -> None:
    assert followers(await metrics_of(client)) == {"waiting": 0, "active": 0}
    since = (await (await client.get("/changes")).json())["next"]
    polling = asyncio.ensure_future(client.get("/changes", params={"since": since, "wait": "30"}))
    seen = []  # each scrape lets the long poll go on: it reads the log, then waits for a change
    while (now := followers(await metrics_of(client))) != {"waiting": 1, "active": 0} and len(seen) < 1000:
        seen.append(now)
    assert now == {"waiting": 1, "active": 0}, seen
    assert all(state in ({"waiting": 0, "active": 0}, {"waiting": 0, "active": 1}) for state in seen), seen
    await create(client)
    assert len((await (await polling).json())["changes"]) == 1
    assert followers(await metrics_of(client)) == {"waiting": 0, "active": 0}


async def test_a_log_record_written_while_a_request_runs_carries_its_request_id(aiohttp_client) -> None:
    """What a handler logs names the request: the pipeline notes the request's own task."""
    import logging

    from app.entrypoints.logs import TextFormatter

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(TextFormatter().format(record))  # at once, in the task that logs

    async def chatty(request: web.Request) -> web.Response:
        logging.getLogger("app.test").warning("inside")
        return web.json_response({})

    app = http_app(build_container(settings_for("memory://")))
    app.router.add_get("/chatty", chatty)
    logger, keep = logging.getLogger("app.test"), Keep()
    logger.addHandler(keep)
    try:
        client = await aiohttp_client(app)
        await client.get("/chatty", headers={"X-Request-ID": "req-chatty"})
    finally:
        logger.removeHandler(keep)
    assert len(lines) == 1 and lines[0].endswith("inside request_id=req-chatty"), lines
