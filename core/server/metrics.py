"""Prometheus metrics of one server: requests, latency per route and per search stage, errors,
and the micro-batching queues. Each app has its own registry (no global state)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .security import ASGIApp, Receive, Scope, Send


class ServerMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("prism_requests", "HTTP requests served", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("prism_request_seconds", "HTTP request latency", ["route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.stages = Histogram("prism_search_stage_seconds", "seconds per search stage", ["recipe", "stage"],
                                registry=self.registry,
                                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
        self.errors = Counter("prism_errors", "requests answered with an error", ["type"], registry=self.registry)
        self.queue_depth = Gauge("prism_search_queue_depth", "searches waiting for a batch", ["recipe"],
                                 registry=self.registry)
        self.search_batch = Histogram("prism_search_batch_queries", "queries per micro-batch (one encoder call per retriever, one store call)", ["recipe"],
                                      registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.ingest_batch = Histogram("prism_ingest_batch_requests", "ingest requests merged into one engine run",
                                      ["recipe"], registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128))

    def watch_queue(self, recipe: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(recipe).set_function(depth)

    def observe_stages(self, recipe: str, timings: Mapping[str, float]) -> None:
        for stage, seconds in timings.items():
            self.stages.labels(recipe, stage).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts every request by its route template (not its raw path, which would grow without
    bound) and times it."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}
        t = time.perf_counter()

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", None) or "unrouted"
            self.metrics.requests.labels(scope.get("method", ""), name, str(status["code"])).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - t)
