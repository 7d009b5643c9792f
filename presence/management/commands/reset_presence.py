from django.core.management.base import BaseCommand

from presence.services import users_reset_presence


class Command(BaseCommand):
    help = (
        "Marks every user offline (last_online now for those who were online), to recover from an "
        "outage that left users shown online. Run it while the servers are stopped: users connected "
        "to a running server would show offline until they reconnect."
    )

    def handle(self, *args, **options):
        count = users_reset_presence()
        self.stdout.write(self.style.SUCCESS(f"Marked {count} online users offline."))
