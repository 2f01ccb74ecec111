"""Prometheus metrics of one server (its own registry, so several apps in one process do not clash)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_ROWS_BUCKETS = tuple(float(1 << i) for i in range(15))


class Metrics:
    """Requests, errors, request latency, rows per batch and queue depth, labelled by model (and method)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("mlejax_requests", "HTTP requests answered", ["model", "route", "code"], registry=self.registry)
        self.errors = Counter("mlejax_request_errors", "requests answered with a 4xx or 5xx status", ["model", "code"], registry=self.registry)
        self.latency = Histogram("mlejax_request_latency_seconds", "time from request to response", ["model", "route"],
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("mlejax_batch_rows", "rows per batch run by the dynamic batcher", ["model", "method"],
                                    buckets=_ROWS_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("mlejax_queue_depth", "requests waiting in a batcher's queue", ["model", "method"], registry=self.registry)

    def observe(self, model: str, route: str, code: int, seconds: float) -> None:
        """Record one answered request."""
        self.requests.labels(model, route, str(code)).inc()
        self.latency.labels(model, route).observe(seconds)
        if code >= 400:
            self.errors.labels(model, str(code)).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The ``/metrics`` body in Prometheus text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
