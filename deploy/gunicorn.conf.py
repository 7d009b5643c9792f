"""gunicorn settings of the REST tier (deploy/run rest). Every value can be overridden from the
environment; the defaults are those of README "Deployment on several machines"."""

import os

bind = os.environ.get("REST_BIND", "0.0.0.0:8000")
# About 1.5 workers per core, each with threads: no event-loop hop per request (WSGI).
workers = int(os.environ.get("REST_WORKERS", "3"))
worker_class = "gthread"
threads = int(os.environ.get("REST_THREADS", "4"))
# Above nginx's upstream keepalive_timeout, so gunicorn never closes a connection nginx reuses.
keepalive = 75
# The largest upload (200 MiB) over a slow mobile link still finishes within this.
timeout = int(os.environ.get("REST_TIMEOUT", "300"))
graceful_timeout = 30
# nginx in front: believe its X-Forwarded-* (the app itself only trusts TRUSTED_PROXIES).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = None  # the app logs what matters, with request ids; nginx keeps the access log
errorlog = "-"
# Upload bodies are spooled by Django, not by gunicorn; keep the request line and headers bounded.
limit_request_line = 8190


def child_exit(server, worker):
    # Prometheus multiprocess mode: a dead worker's live gauges (open sockets) stop counting.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
