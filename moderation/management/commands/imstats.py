import json

from django.core.management.base import BaseCommand

from moderation.selectors import FIGURES


class Command(BaseCommand):
    help = "Prints the service's figures: users, online now, conversations, messages in the last day and week."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json", help="one JSON object, for scripts")

    def handle(self, *args, as_json, **options):
        figures = [(key, label, figure()) for key, label, figure in FIGURES]
        if as_json:
            self.stdout.write(json.dumps({key: value for key, _, value in figures}))
            return
        width = max(len(label) for _, label, _ in figures)
        for _, label, value in figures:
            self.stdout.write(f"{label:<{width}}  {value:>12,}")
