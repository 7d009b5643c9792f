"""The plans PostgreSQL picks for the hot reads: a history page deep in a long conversation reads
its page down the index, not every message of the range (docs/performance.md)."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Message
from tests.chat.test_api import history
from tests.conftest import client_for, is_postgres, private_chat

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not is_postgres(), reason="PostgreSQL's planner is what is under test"),
]

DEPTH = 3000


def explained(sql: str) -> dict:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        (plan,) = cursor.fetchone()
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def test_a_deep_history_page_reads_only_its_rows(user, other_user):
    conversation = private_chat(user, other_user)
    Message.objects.bulk_create(
        [Message(conversation=conversation, seq=n, sender=user, content=f"m{n}") for n in range(1, DEPTH + 1)]
    )
    Conversation.objects.filter(pk=conversation.pk).update(last_seq=DEPTH)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_message")
    anchor = Message.objects.get(conversation=conversation, seq=DEPTH - 10)
    with CaptureQueriesContext(connection) as queries:
        response = history(client_for(user), conversation, before=f"m{anchor.pk}", limit=50)
    assert len(response.json()["messages"]) == 50
    (page,) = [q["sql"] for q in queries.captured_queries if "FROM chat_message m" in q["sql"]]
    read = [n["Actual Rows"] for n in nodes(explained(page)) if n.get("Alias") == "m"]
    # The page and the one row that tells has_more; a plan that sorts the range reads ~2,990.
    assert read == [51]
