from django.core.management.base import BaseCommand, CommandError

from moderation import services
from moderation.management.helpers import user_named


class Command(BaseCommand):
    help = "Lifts a user's ban, as the admin's unban action does (they log in again to get tokens)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reason", default="", help="why (recorded in the audit log)")

    def handle(self, *args, username, reason, **options):
        user = user_named(username)
        try:
            services.user_unban(actor=services.cli_actor(), user=user, reason=reason)
        except services.ModerationError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Unbanned {user.username}."))
