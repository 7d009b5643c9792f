from django.core.management.base import BaseCommand

from accounts.models import User
from chat.models import Message
from chat.search import message_index_rebuild
from groups.models import Group
from imserver.namesearch import names_reindex


class Command(BaseCommand):
    help = (
        "(Re)builds the search index in batches, printing progress: every message, then the names "
        "of every user and group."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=5000, help="Rows per transaction (default 5000).")

    def handle(self, *args, batch_size, **options):
        total = Message.objects.count()
        done = 0
        for done, last_id in message_index_rebuild(batch_size=batch_size):
            self.stdout.write(f"{done}/{total} messages indexed (up to m{last_id})")
        self.stdout.write(self.style.SUCCESS(f"Search index rebuilt: {done} messages."))
        for model, label in ((User, "users"), (Group, "groups")):
            total, done = model.objects.count(), 0
            for done, _ in names_reindex(model, batch_size=batch_size):
                self.stdout.write(f"{done}/{total} {label} indexed")
            self.stdout.write(self.style.SUCCESS(f"Name search rebuilt: {done} {label}."))
