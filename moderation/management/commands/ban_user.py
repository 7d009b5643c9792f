from django.core.management.base import BaseCommand, CommandError

from moderation import services
from moderation.management.helpers import user_named


class Command(BaseCommand):
    help = (
        "Bans a user, as the admin's ban action does: their tokens stop working at once, their sockets "
        "are closed (4403) and they disappear from search. Recorded in the audit log as cli:<you>."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reason", required=True, help="why (recorded with the ban and in the audit log)")

    def handle(self, *args, username, reason, **options):
        user = user_named(username)
        try:
            services.user_ban(actor=services.cli_actor(), user=user, reason=reason)
        except services.ModerationError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Banned {user.username}."))
