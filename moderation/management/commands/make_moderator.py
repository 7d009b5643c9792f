from django.core.management.base import BaseCommand, CommandError

from moderation import services
from moderation.management.helpers import user_named


class Command(BaseCommand):
    help = (
        "Makes an existing account a moderator: staff (may log in at /admin/ with its password) and in "
        "the Moderators group, not a superuser. --remove takes it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--remove", action="store_true", help="stop being a moderator")

    def handle(self, *args, username, remove, **options):
        user = user_named(username)
        try:
            if remove:
                services.moderator_revoke(actor=services.cli_actor(), user=user)
            else:
                services.moderator_grant(actor=services.cli_actor(), user=user)
        except services.ModerationError as exc:
            raise CommandError(str(exc)) from None
        done = "is no longer a moderator" if remove else "is now a moderator: they log in at /admin/"
        self.stdout.write(self.style.SUCCESS(f"{user.username} {done}."))
