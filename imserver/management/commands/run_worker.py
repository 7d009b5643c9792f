"""The worker process (`deploy/run worker`): push delivery, every app's periodic jobs and the
daily maintenance, in one process; run any number of them.

Server processes run the periodic jobs too (realtime/background.py), so a small install needs no
worker; the REST tier under gunicorn (WSGI) runs none, which is what this process is for. Pushes
leave from every process holding a sender: server processes send them too unless PUSH_WORKER is
on, which leaves them to the workers (production). Senders claim outbox rows with SKIP LOCKED,
so any number of workers and servers share the work without sending a push twice.
"""

import asyncio
import contextlib
import logging
import signal

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from imserver import metrics
from push import jobs as push_jobs
from push import providers as push_providers
from realtime import background

logger = logging.getLogger(__name__)

# The daily maintenance: each command is safe to run from several workers at once.
DAILY_COMMANDS = ("prune_events", "purge_media", "prune_tokens", "prune_idempotency_keys")


class Command(BaseCommand):
    help = "Runs the background jobs (push delivery, periodic jobs of every app, the daily maintenance) until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run the daily maintenance once and exit")

    def handle(self, *args, once=False, **options):
        if once:
            self.run_daily_maintenance()
            return
        asyncio.run(self.serve())

    async def serve(self):
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        background.ensure_started()
        metrics_server = metrics.serve_for_worker()
        # With PUSH_WORKER off the periodic jobs already include a push sender (push/jobs.py).
        sends_pushes = settings.PUSH_WORKER and any(push_providers.enabled().values())
        pushes = asyncio.create_task(push_jobs.run_worker(stopping)) if sends_pushes else None
        logger.info(
            "worker started: %speriodic jobs and daily maintenance every %ss%s",
            "push delivery, " if pushes else "",
            settings.MAINTENANCE_INTERVAL,
            f"; metrics on {settings.METRICS_WORKER_LISTEN}" if metrics_server else "",
        )
        while not stopping.is_set():
            await asyncio.to_thread(self.run_daily_maintenance)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=settings.MAINTENANCE_INTERVAL)
        if pushes:
            await pushes  # finishes the round in flight and closes the provider connections
        if metrics_server:
            metrics_server.shutdown()
        logger.info("worker stopped")

    def run_daily_maintenance(self):
        for name in DAILY_COMMANDS:
            try:
                call_command(name, stdout=self.stdout)
            except Exception:
                metrics.BACKGROUND_JOB_FAILURES.labels(name).inc()
                logger.exception("maintenance command %s failed; it runs again at the next round", name)
