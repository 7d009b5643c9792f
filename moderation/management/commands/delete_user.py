from django.core.management.base import BaseCommand, CommandError

from moderation import services
from moderation.management.helpers import user_named
from privacy import services as privacy_services


class Command(BaseCommand):
    help = (
        'Erases a user\'s account (README, "Deleting an account"): it becomes an anonymous tombstone, '
        "its personal data, contacts, memberships and event log are deleted, its messages stay as "
        'from "Deleted user". The same as the app\'s DELETE /v1/user/me. Cannot be undone.'
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--reason", default="", help="why, e.g. a ticket number (recorded in the audit log)")
        parser.add_argument(
            "--noinput", "--no-input", action="store_false", dest="interactive", help="do not ask for confirmation"
        )

    def handle(self, *args, username, reason, interactive, **options):
        user = user_named(username)
        if interactive:
            try:
                answer = input(f"Erase the account {user.username} (id {user.pk}) for good? Type its username: ")
            except EOFError:
                answer = ""
            if answer != user.username:
                raise CommandError("Not confirmed; nothing was deleted. (--no-input skips the question.)")
        try:
            tombstone = privacy_services.user_delete(actor=services.cli_actor(), user=user, reason=reason)
        except services.ModerationError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(f"Deleted {username}: the account is now {tombstone.username}."))
