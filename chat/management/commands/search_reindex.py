from django.core.management.base import BaseCommand

from chat.models import Message
from chat.search import message_index_rebuild


class Command(BaseCommand):
    help = "(Re)builds the message search index for every message, in batches, printing progress."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=5000, help="Messages per transaction (default 5000).")

    def handle(self, *args, batch_size, **options):
        total = Message.objects.count()
        done = 0
        for done, last_id in message_index_rebuild(batch_size=batch_size):
            self.stdout.write(f"{done}/{total} messages indexed (up to m{last_id})")
        self.stdout.write(self.style.SUCCESS(f"Search index rebuilt: {done} messages."))
