"""Periodic jobs that run inside every server process (e.g. expiring calls that rang too long).

Apps register async jobs with @periodic in their AppConfig.ready(); the ASGI application starts
them on the first request or connection a process receives. Every process runs every job, so a
job must be safe to run concurrently (conditional updates, SKIP LOCKED): whichever process gets
there first does the work, exactly once.
"""

import asyncio
import logging

from imserver import metrics

logger = logging.getLogger(__name__)

_jobs = {}
_started_loop = None


def periodic(seconds):
    """Registers an async function to run every `seconds` in each server process."""

    def register(func):
        _jobs[f"{func.__module__}.{func.__qualname__}"] = (seconds, func)
        return func

    return register


async def _run_forever(name, seconds, func):
    while True:
        await asyncio.sleep(seconds)
        try:
            await func()
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.BACKGROUND_JOB_FAILURES.labels(name).inc()
            logger.exception("periodic job %s failed; it runs again in %ss", name, seconds)


def ensure_started():
    """Starts the registered jobs on the running loop, once per loop."""
    global _started_loop
    loop = asyncio.get_running_loop()
    if _started_loop is loop:
        return
    _started_loop = loop
    for name, (seconds, func) in _jobs.items():
        loop.create_task(_run_forever(name, seconds, func), name=name)


class BackgroundJobsMiddleware:
    """ASGI middleware: the first scope a process serves starts its periodic jobs."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            ensure_started()
        return await self.app(scope, receive, send)
