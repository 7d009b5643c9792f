import asyncio
import signal

from django.core.management.base import BaseCommand, CommandError

from push import providers
from push.jobs import run_worker


class Command(BaseCommand):
    help = (
        "Sends push notifications from the outbox until stopped (SIGTERM/SIGINT). Run any number of "
        "them; set PUSH_WORKER=true on the server processes so that they leave pushes to the workers."
    )

    def handle(self, *args, **options):
        if not any(providers.enabled().values()):
            raise CommandError("No push provider is configured (FCM_CREDENTIALS_FILE or APNS_KEY_FILE).")

        async def main():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            await run_worker(stop)

        asyncio.run(main())
