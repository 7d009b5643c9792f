from django.core.management.base import BaseCommand
from django.db.models import Count, Sum

from imserver.cli import parse_age
from media.services import media_orphans, media_purge_orphans


class Command(BaseCommand):
    help = "Deletes uploads (rows and files) that no message or avatar used within MEDIA_ORPHAN_HOURS."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", help="age such as 24h or 2d (default: MEDIA_ORPHAN_HOURS)")
        parser.add_argument("--dry-run", action="store_true", help="only count what would be deleted")

    def handle(self, *args, older_than=None, dry_run=False, **options):
        age = parse_age(older_than) if older_than else None
        if dry_run:
            found = media_orphans(older_than=age).aggregate(count=Count("pk"), size=Sum("size"))
            self.stdout.write(f"Would purge {found['count']} unattached upload(s), {found['size'] or 0} bytes.")
            return
        purged = media_purge_orphans(older_than=age)
        self.stdout.write(f"Purged {purged} unattached upload(s).")
