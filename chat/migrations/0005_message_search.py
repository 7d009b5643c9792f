"""The message search index (chat/search.py, docs/search.md). Not a Django model: its form
differs by database. Filled by `manage.py search_reindex` for messages that predate it."""

from django.db import migrations

POSTGRES = [
    """CREATE TABLE chat_message_search (
        message_id bigint PRIMARY KEY REFERENCES chat_message (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
        conversation_id bigint NOT NULL,
        sender_id bigint NOT NULL,
        document tsvector NOT NULL
    )""",
    # The phrase and prefix queries of search, tokens under their conversation (chat/search.py);
    # fastupdate (the default) keeps sends cheap.
    "CREATE INDEX chat_message_search_document ON chat_message_search USING gin (document)",
]
SQLITE = [
    # Tokens are made in Python (imserver.textsearch) and only split on spaces here: the
    # categories keep every character a token may hold; diacritics stay as normalized.
    """CREATE VIRTUAL TABLE chat_message_search USING fts5(
        document, conversation_id UNINDEXED, sender_id UNINDEXED,
        tokenize = "unicode61 remove_diacritics 0 categories 'L* M* N* Pc So'"
    )""",
]


def create(apps, schema_editor):
    for statement in POSTGRES if schema_editor.connection.vendor == "postgresql" else SQLITE:
        schema_editor.execute(statement)


def drop(apps, schema_editor):
    schema_editor.execute("DROP TABLE chat_message_search")


class Migration(migrations.Migration):
    dependencies = [("chat", "0004_merge_0002_message_moderation_0003_message_call")]

    operations = [migrations.RunPython(create, drop)]
