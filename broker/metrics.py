"""Prometheus metrics of the broker (process-wide, as Prometheus expects one registry per process).

Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory so ``/metrics`` sums every
worker.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REQUESTS = Counter(
    "broker_http_requests_total", "HTTP requests handled", ["method", "route", "status"]
)
LATENCY = Histogram(
    "broker_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPLOADS = Counter("broker_uploads_total", "Uploads by outcome", ["outcome"])
SIGNATURES = Counter("broker_signatures_total", "URLs signed", ["method"])
DEPENDENCY_ERRORS = Counter(
    "broker_dependency_errors_total", "Failed calls to MongoDB or S3", ["dependency"]
)

# Label values must not grow with input: a method outside these (clients may send any token)
# counts as "other", and a path no route matches as the one route "unmatched".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"


def method_label(method: str) -> str:
    """The ``method`` label for a request method: itself when standard, else ``other``."""
    return method if method in _METHODS else OTHER_METHOD


class _Snapshot(Collector):
    """Gauges read from MongoDB at scrape time (the same in every process, so never summed)."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        """The gauges as read."""
        return self.families


def variant_queue_exposition(queued: int, running: int, oldest_due_seconds: float) -> bytes:
    """The variant queue as Prometheus text: jobs by state and the oldest due job's wait."""
    jobs = GaugeMetricFamily("broker_variant_jobs", "Variant jobs by state", labels=["state"])
    jobs.add_metric(["queued"], queued)
    jobs.add_metric(["running"], running)
    wait = GaugeMetricFamily(
        "broker_variant_jobs_oldest_due_seconds",
        "How long the longest-waiting due variant job has been due (0: none)",
        value=oldest_due_seconds,
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot([jobs, wait]))
    return generate_latest(registry)


# (method, route, status) → the request counter's and the latency histogram's children. Looking
# a child up by its labels (``labels()``) takes a lock and builds a key on every call; bound
# once, a request costs one dict look-up. As bounded as the series themselves.
_REQUEST_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration (``broker_http_requests_total`` and
    ``broker_http_request_duration_seconds``)."""
    key = (method, route, status)
    children = _REQUEST_CHILDREN.get(key)
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
        _REQUEST_CHILDREN[key] = children
    counter, histogram = children
    counter.inc()
    histogram.observe(seconds)
