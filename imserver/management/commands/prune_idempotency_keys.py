from django.core.management.base import BaseCommand

from imserver.cli import parse_age
from imserver.idempotency import idempotency_keys_prune


class Command(BaseCommand):
    help = "Deletes Idempotency-Key records past their lifetime (IDEMPOTENCY_KEY_HOURS, default 24 hours)."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="age such as 24h (default: the key lifetime)")

    def handle(self, *args, older_than=None, **options):
        age = parse_age(older_than) if older_than else None
        self.stdout.write(f"Deleted {idempotency_keys_prune(older_than=age)} idempotency keys.")
