"""The plans PostgreSQL picks for the hot reads: a history page deep in a long conversation reads
its page down the index, not every message of the range; the conversation list counts mentions
by probing each unread message, not by hashing all of the member's mentions for every row
(docs/performance.md)."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from chat.models import Conversation, Membership, Mention, Message
from tests.chat.test_api import history
from tests.conftest import client_for, is_postgres, make_user, private_chat

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


def test_the_conversation_list_counts_mentions_by_probing_unread_messages(user, other_user):
    """Each of 10 conversations has 30 unread messages; 700 older ones mention the reader. A plan
    that hashes the reader's mentions for each membership row reads 7,000 mention rows."""
    conversations = [private_chat(user, make_user(f"peer{n}")) for n in range(10)]
    old = private_chat(user, other_user)
    Message.objects.bulk_create(
        [Message(conversation=old, seq=n, sender=other_user, content=f"@alice {n}") for n in range(1, 701)]
    )
    Mention.objects.bulk_create(
        [Mention(message=message, user=user) for message in Message.objects.filter(conversation=old)]
    )
    Conversation.objects.filter(pk=old.pk).update(last_seq=700)
    Membership.objects.filter(conversation=old, user=user).update(last_read_seq=700)
    for conversation in conversations:
        peer = conversation.memberships.exclude(user=user).get().user
        Message.objects.bulk_create(
            [Message(conversation=conversation, seq=n, sender=peer, content=f"m{n}") for n in range(1, 31)]
        )
        Conversation.objects.filter(pk=conversation.pk).update(last_seq=30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_message; ANALYZE chat_mention; ANALYZE chat_membership")
    with CaptureQueriesContext(connection) as queries:
        listed = client_for(user).get("/v1/conversations?limit=20").json()
    assert sorted(item["unread_count"] for item in listed["conversations"]) == [0] + [30] * 10
    (page,) = [q["sql"] for q in queries.captured_queries if "FROM chat_membership mb" in q["sql"]]
    mention_rows = [
        n["Actual Rows"] * n["Actual Loops"] for n in nodes(explained(page)) if n.get("Relation Name") == "chat_mention"
    ]
    assert sum(mention_rows) == 0  # 300 probes of unread messages, none of which mentions alice
