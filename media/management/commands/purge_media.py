from datetime import timedelta

from django.core.management.base import BaseCommand

from media.services import media_purge_orphans


class Command(BaseCommand):
    help = "Deletes uploads (rows and files) that no message or avatar used within MEDIA_ORPHAN_HOURS."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, help="Age in hours instead of MEDIA_ORPHAN_HOURS.")

    def handle(self, *args, hours=None, **options):
        purged = media_purge_orphans(older_than=None if hours is None else timedelta(hours=hours))
        self.stdout.write(f"Purged {purged} unattached upload(s).")
