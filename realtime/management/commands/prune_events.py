import re
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from realtime.services import events_prune

UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_age(text):
    match = re.fullmatch(r"(\d+)([smhd])", text or "")
    if not match:
        raise CommandError(f"--older-than takes a number and a unit (s, m, h, d), e.g. 7d; got {text!r}")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = "Deletes realtime events older than the retention window (EVENT_RETENTION_DAYS, default 7 days)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="age such as 7d or 36h (default: the retention window)")

    def handle(self, *args, older_than=None, **options):
        age = parse_age(older_than) if older_than else None
        user_events, payloads = events_prune(older_than=age)
        self.stdout.write(f"Deleted {payloads} events ({user_events} deliveries).")
