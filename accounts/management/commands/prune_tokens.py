from django.core.management.base import BaseCommand

from accounts.services import tokens_prune


class Command(BaseCommand):
    help = "Deletes the records of expired refresh tokens (and their blacklist entries) and expired reset codes."

    def handle(self, *args, **options):
        tokens, codes = tokens_prune()
        self.stdout.write(f"Deleted {tokens} expired refresh tokens and {codes} expired password-reset codes.")
