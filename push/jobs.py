"""Where pushes are sent from: inside every server process (the embedded default, `make run`),
or only in `manage.py run_worker` processes when PUSH_WORKER is on (production)."""

import asyncio
import contextlib
import logging

from django.conf import settings

from push import providers
from push.sender import Sender
from realtime.background import periodic

logger = logging.getLogger(__name__)

IDLE_SECONDS = 0.25  # how often an idle sender looks for due pushes

_senders = {}  # event loop -> Sender


async def send_pushes_once() -> int:
    loop = asyncio.get_running_loop()
    sender = _senders.get(loop)
    if sender is None:
        sender = _senders[loop] = Sender(providers.clients())
    return await sender.send_due()


def register():
    if settings.PUSH_WORKER or not any(providers.enabled().values()):
        return

    @periodic(IDLE_SECONDS)
    async def send_pushes():
        await send_pushes_once()


async def run_worker(stop: asyncio.Event) -> None:
    """The push loop of a `run_worker` process: sends while there is work, polls when idle."""
    sender = Sender(providers.clients())
    try:
        while not stop.is_set():
            try:
                sent = await sender.send_due()
            except Exception:
                logger.exception("push round failed; retrying")
                sent = 0
            if not sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), IDLE_SECONDS)
    finally:
        await sender.aclose()
