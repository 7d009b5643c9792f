"""Prometheus metrics (prometheus-client): HTTP by route, database queries, and the IM's own.

Served at /metrics only when METRICS_TOKEN is set, to callers sending `Authorization: Bearer
<METRICS_TOKEN>` (anyone else gets 404, as for an unknown path): the numbers describe the
service, not for the public. Under gunicorn or uvicorn with several workers each process counts
its own: set PROMETHEUS_MULTIPROC_DIR (an empty directory, wiped at each start) and /metrics adds
up every process (prometheus-client's multiprocess mode; deploy/ does so). The worker, which
serves no HTTP, answers /metrics on METRICS_WORKER_LISTEN with the same token.

The IM counters are defined here, in one place, for the code that counts them: the realtime
consumer and bus, the background jobs and the push pipeline (which increments PUSH_JOBS).
"""

import hmac
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from django.conf import settings
from django.db.backends.signals import connection_created
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from imserver.api import error_response

HTTP_REQUESTS = Histogram(
    "imserver_http_request_duration_seconds",
    "HTTP requests by route (the URL pattern, not the path), method and status, with their latency.",
    ["route", "method", "status"],
)
DB_QUERIES = Histogram(
    "imserver_db_query_duration_seconds", "Database queries and their latency.", ["vendor", "outcome"]
)
CACHE_FAILURES = Counter(
    "imserver_cache_errors_total", "Shared-cache (Redis) calls that failed (rate limits then fail open)."
)
OPEN_SOCKETS = Gauge(
    "imserver_websockets_open", "Open, authenticated WebSockets of this process.", multiprocess_mode="livesum"
)
EVENTS_PUBLISHED = Counter("imserver_events_published_total", "Realtime messages handed to the bus after commit.")
EVENTS_DELIVERED = Counter("imserver_events_delivered_total", "Event frames sent to WebSockets.")
GAP_FILLS = Counter("imserver_gap_fills_total", "Events read from the log because the bus did not bring them in time.")
RESYNCS = Counter("imserver_resyncs_total", "Sockets caught up from the event log after a bus reconnect.")
BACKPRESSURE_CLOSES = Counter(
    "imserver_websockets_closed_backpressure_total", "Sockets closed (4408) because they stopped reading."
)
# queued: events written to the push outbox (one per event, whatever its recipients); sent,
# retried, failed: pushes to devices, each attempt counted once.
PUSH_JOBS = Counter("imserver_push_jobs_total", "Push notification jobs by outcome.", ["state"])
BACKGROUND_JOB_FAILURES = Counter("imserver_background_job_failures_total", "Background job runs that failed.", ["job"])


def route_of(request) -> str:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None else "unmatched"


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        HTTP_REQUESTS.labels(route_of(request), request.method, response.status_code).observe(
            time.perf_counter() - started
        )
        return response


def _time_query(execute, sql, params, many, context):
    started = time.perf_counter()
    outcome = "error"
    try:
        result = execute(sql, params, many, context)
        outcome = "ok"
        return result
    finally:
        DB_QUERIES.labels(context["connection"].vendor, outcome).observe(time.perf_counter() - started)


def _instrument_connection(sender, connection, **kwargs):
    if _time_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_time_query)


connection_created.connect(_instrument_connection, dispatch_uid="imserver.metrics.instrument_connection")


def exposition() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def _authorized(authorization: str) -> bool:
    token = settings.METRICS_TOKEN
    offered = authorization.removeprefix("Bearer ")
    return bool(token) and hmac.compare_digest(offered.encode(), token.encode())


@csrf_exempt
@require_safe
def metrics_view(request):
    if not _authorized(request.META.get("HTTP_AUTHORIZATION", "")):
        return error_response(404, "Not found")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


class _WorkerMetricsHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.partition("?")[0] != "/metrics" or not _authorized(self.headers.get("Authorization", "")):
            body, status, content_type = (
                b'{"code":404,"message":"Not found","details":"Not found"}',
                404,
                "application/json",
            )
        else:
            body, status, content_type = exposition(), 200, CONTENT_TYPE_LATEST
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # scrapes are not worth a log line each
        pass


def serve_for_worker() -> ThreadingHTTPServer | None:
    """/metrics of a process without HTTP of its own (the worker), on METRICS_WORKER_LISTEN, in a
    daemon thread; None while METRICS_TOKEN is unset (then there is nothing to serve)."""
    if not settings.METRICS_TOKEN:
        return None
    host, _, port = settings.METRICS_WORKER_LISTEN.rpartition(":")
    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), _WorkerMetricsHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
