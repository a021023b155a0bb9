"""Prometheus metrics at GET /metrics: requests by route and status, latencies, the database pool,
the followers of the changes feed.

Every application has its own `CollectorRegistry` (several apps live in one test process). With
`--workers N` every process has its own registry too: a scrape sees the process that answered it,
so scrape each worker or sum over them; this service does not use prometheus_client's
multiprocess mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import accumulate

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from app.adapters import Followers, PoolUsage
from app.entrypoints.http.keys import METRICS, METRICS_REGISTRY
from app.entrypoints.http.negotiation import not_json

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LE = (*(repr(bound) for bound in BUCKETS), "+Inf")
# Other methods (WebDAV's and the like) are counted as "other".
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # the route label of a request that matched no route (404, 405)



class RequestMetrics(Collector):
    """The requests one application answered, kept in plain dicts and exposed when scraped.

    `series` maps (route, method) to buckets by status: a count per bucket of BUCKETS, the +Inf
    overflow and the sum of seconds. Each route's observer holds its own dict of statuses, so
    counting a request is one dict lookup and a bisect, done where the request is answered
    (pipeline.py), with no lock: requests and scrapes share the event loop's thread. Counts
    per status and the latency histogram per route come out of the same buckets, summed by
    `collect` at scrape time.
    """

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], dict[int, list[float]]] = {}
        # the same, by route object, for the routes of one method (not "*"): aiohttp matches such
        # a route only for its method, so the route alone is the key. The app's routes are few
        # and fixed, and the pipeline looks a request's up here first, a dict lookup rather than
        # a call of `statuses`
        self.by_route: dict[web.AbstractRoute, dict[int, list[float]]] = {}

    def statuses(self, route: web.AbstractRoute, method: str) -> dict[int, list[float]]:
        """The buckets by status of `route` answering `method`: a route by its path template, the
        router's own answers (no such path, no such method) as "unmatched"; a method not in
        METHODS counts as "other", so a client cannot grow the series with made-up methods."""
        if route.method == method != hdrs.METH_ANY and (found := self.by_route.get(route)) is not None:
            return found
        resource = route.resource
        label = UNMATCHED if resource is None else resource.canonical
        found = self.series.setdefault((label, method if method in METHODS else "other"), {})
        # not the router's answers (a route made afresh each time), nor a route of "*" (the request
        # method "*" would store it, and every method's requests would then count under "*"'s)
        if resource is not None and route.method == method != hdrs.METH_ANY:
            self.by_route[route] = found
        return found

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        counts, latencies = self._summed()
        requests = CounterMetricFamily(
            "notes_http_requests", "HTTP requests answered, by route, method and status",
            labels=("route", "method", "status"),
        )
        for labels, count in counts.items():
            requests.add_metric(labels, count)
        yield requests
        latency = HistogramMetricFamily(
            "notes_http_request_duration_seconds",
            "Time from a request reaching the application to its response being ready,"
            " by route and method",
            labels=("route", "method"),
        )
        for labels, buckets in latencies.items():
            cumulative = accumulate(buckets[:-1])
            latency.add_metric(labels, list(zip(_LE, cumulative, strict=True)), buckets[-1])
        yield latency

    def _summed(self) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], list[float]]]:
        """Request counts by (route, method, status), and buckets by (route, method)."""
        counts: dict[tuple[str, ...], float] = {}
        latencies: dict[tuple[str, ...], list[float]] = {}
        for (route, method), by_status in list(self.series.items()):
            if not by_status:
                continue  # a route not asked yet
            summed = latencies.setdefault((route, method), new_buckets())
            for status, buckets in list(by_status.items()):
                labels = (route, method, str(status))
                counts[labels] = counts.get(labels, 0) + sum(buckets[:-1])
                summed[:] = map(sum, zip(summed, buckets, strict=True))
        return counts, latencies


def new_buckets() -> list[float]:
    return [0] * (len(BUCKETS) + 2)


class SplitGauge(Collector):
    """A gauge of a count split in two states, read when scraped: `read` gives the count and how
    many of it are in the first state."""

    def __init__(self, name: str, documentation: str, states: tuple[str, str],
                 read: Callable[[], tuple[int, int]]) -> None:
        self._name, self._documentation, self._states, self._read = name, documentation, states, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count, first = self._read()
        gauge = GaugeMetricFamily(self._name, self._documentation, labels=("state",))
        gauge.add_metric((self._states[0],), first)
        gauge.add_metric((self._states[1],), count - first)
        yield gauge


def pool_gauge(usage: PoolUsage) -> SplitGauge:
    return SplitGauge("notes_db_pool_connections", "Open database connections of this process, by state",
                      ("idle", "in_use"), usage)


def followers_gauge(followers: Followers) -> SplitGauge:
    return SplitGauge(
        "notes_changes_followers",
        "Followers of the changes feed in this process (long polls and streams), by state: waiting"
        " for a change (idle: no query, no CPU), or active (reading, sending, or about to look"
        " again at changes a transaction in flight holds back)",
        ("waiting", "active"), followers,
    )


def add_metrics(app: web.Application, metrics: RequestMetrics) -> Callable[[PoolUsage | None, Followers], None]:
    """What `metrics_page` (GET /metrics, routed in app.py) exposes; the function returned adds
    the storage's connection pool (if it has one) and its followers once it is open."""
    registry = CollectorRegistry()
    app[METRICS] = metrics
    app[METRICS_REGISTRY] = registry
    registry.register(metrics)

    def register_storage(pool_usage: PoolUsage | None, followers: Followers) -> None:
        if pool_usage is not None:
            registry.register(pool_gauge(pool_usage))
        registry.register(followers_gauge(followers))

    return register_storage


@not_json
async def metrics_page(request: web.Request) -> web.Response:
    """The Prometheus text exposition (version 0.0.4) of this process's metrics."""
    body = generate_latest(request.app[METRICS_REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
