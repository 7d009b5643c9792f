from types import GeneratorType

from django.core.management.base import BaseCommand, CommandError

from imserver.api import dumps
from moderation.management.helpers import user_named
from privacy.services import user_export


def write_json(out, export):
    """Writes the export as one JSON object, generator sections item by item (never all in memory)."""
    out.write("{")
    for index, (name, value) in enumerate(export.items()):
        out.write(f"{',' if index else ''}\n  {dumps(name).decode()}: ")
        if isinstance(value, GeneratorType):
            out.write("[")
            for item_index, item in enumerate(value):
                out.write(f"{',' if item_index else ''}\n    {dumps(item).decode()}")
            out.write("\n  ]")
        else:
            out.write(dumps(value).decode())
    out.write("\n}\n")


class Command(BaseCommand):
    help = (
        "Writes everything stored about a user (profile, social logins, contacts, memberships, their "
        "messages, their reports) as JSON, for a data-access request."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")

    def handle(self, *args, username, output, **options):
        user = user_named(username)
        if output is None:
            self.stdout.ending = ""  # write_json writes fragments, not lines
            write_json(self.stdout, user_export(user))
            return
        try:
            with open(output, "w", encoding="utf-8") as out:
                write_json(out, user_export(user))
        except OSError as exc:
            raise CommandError(f"Cannot write {output}: {exc.strerror}") from None
        self.stderr.write(f"Wrote the data of {user.username} to {output}.")
