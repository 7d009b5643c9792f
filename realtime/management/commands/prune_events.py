from django.core.management.base import BaseCommand

from imserver.cli import parse_age
from realtime.services import events_prune


class Command(BaseCommand):
    help = "Deletes realtime events older than the retention window (EVENT_RETENTION_DAYS, default 7 days)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="age such as 7d or 36h (default: the retention window)")

    def handle(self, *args, older_than=None, **options):
        age = parse_age(older_than) if older_than else None
        user_events, payloads = events_prune(older_than=age)
        self.stdout.write(f"Deleted {payloads} events ({user_events} deliveries).")
