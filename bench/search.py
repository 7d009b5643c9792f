"""Message search on PostgreSQL (issue 16): 1,000,000 messages of mixed Chinese and English chat
text in 10,000 conversations, one user in 200 of them.

Generates the data set itself into its own database (COPY, not the API) and keeps it between runs
(--regenerate makes it again). Then measures, for that user:
- search latency (chat.search.messages_search, the query GET /v1/messages/search runs; first page
  of 20 with its total) for 1-, 2- and 4-character Chinese queries and English words;
- the same searches as `ILIKE '%q%'` over the user's messages, without an index and with a pg_trgm
  GIN index (if the extension can be created; the index is dropped again afterwards);
- sends (chat.services.message_send, in this process) without the index, with its row written
  by the message's INSERT itself, and with it written by a second statement, interleaved;
- the sizes of the table, the search index and the trigram index.

    .venv/bin/python bench/search.py
    .venv/bin/python bench/search.py --regenerate --messages 1000000 --conversations 10000

Its database is SEARCH_BENCH_DATABASE_URL (default imserver_search_bench on 127.0.0.1), never
DATABASE_URL; Redis is bench/common.py's.
"""

import argparse
import importlib
import io
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Its own database, whatever DATABASE_URL says (run_all's points at the other tools' data): the
# data set is truncated and made again here.
os.environ["DATABASE_URL"] = os.environ.get(
    "SEARCH_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/imserver_search_bench"
)

from bench.report import percentile, report
from bench.seed import create_database, django_setup

COMMAND = "bench/search.py"
SEARCHER = "search_bench_user"
SENDER = "search_bench_sender"
SEARCHER_CONVERSATIONS = 200
USERS = 5000

# Chat vocabulary with Zipf-like weights: a few words are in many messages, as in real chats.
_CHINESE_WORDS = (
    "我 你 他 我们 好的 今天 明天 晚上 周末 上海 北京 东边 公司 会议 开会 项目 上线 测试 版本 问题 "
    "吃饭 午饭 晚饭 咖啡 电影 地铁 下班 加班 周末愉快 辛苦了 没问题 谢谢 收到 马上 一起 看看 文件 "
    "发给 老板 客户 需求 代码 手机 电脑 天气 下雨 出发 到了 等等 哈哈 真的 可以 不行 时间 地址 照片"
)
_ENGLISH_WORDS = (
    "ok thanks meeting lunch tomorrow today flutter release build test bug fix deploy server client "
    "android ios design review coffee weekend please check the docs link call later sounds good sure "
    "morning night ticket update version issue merge branch ship it great cool done"
)
CHINESE, ENGLISH = _CHINESE_WORDS.split(), _ENGLISH_WORDS.split()
QUERIES = {
    "chinese 1 char": ["好", "上", "饭", "雨"],
    "chinese 2 chars": ["上海", "明天", "会议", "咖啡"],
    "chinese 4 chars": ["周末愉快", "明天开会", "项目上线", "公司加班"],
    "english word": ["meeting", "flutter", "release", "coffee"],
}


def weights(words):
    return [1 / (rank + 1) for rank in range(len(words))]


def chat_text(rng, zh_weights, en_weights):
    kind = rng.random()
    if kind < 0.5:  # Chinese
        return "".join(rng.choices(CHINESE, zh_weights, k=rng.randint(2, 8))) + rng.choice(["", "。", "！", "？"])
    if kind < 0.75:  # English
        return " ".join(rng.choices(ENGLISH, en_weights, k=rng.randint(3, 12)))
    words = rng.choices(CHINESE, zh_weights, k=rng.randint(2, 6))
    words.insert(rng.randrange(len(words) + 1), " " + rng.choice(ENGLISH).capitalize() + " ")
    return "".join(words)


def generate(messages, conversations):
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from accounts.models import User
    from chat.models import Conversation, Membership
    from chat.search import scoped_tokens
    from imserver.textsearch import document_tokens, tsvector_literal

    rng = random.Random(16)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE chat_message_search, chat_message, chat_membership, chat_conversation, accounts_user CASCADE"
        )
    password = make_password("Bench-password-1")
    users = User.objects.bulk_create(
        [User(username=SEARCHER, email="searcher@bench.invalid", nickname="Searcher", password=password)]
        + [
            User(username=f"sb{i}", email=f"sb{i}@bench.invalid", nickname=f"U{i}", password=password)
            for i in range(USERS)
        ],
        batch_size=2000,
    )
    searcher, others = users[0], users[1:]
    now = datetime.now(UTC)
    per_conversation = messages // conversations
    rows = Conversation.objects.bulk_create(
        [
            Conversation(type=Conversation.Type.GROUP, last_seq=per_conversation, last_activity_at=now)
            for _ in range(conversations)
        ],
        batch_size=2000,
    )
    members = {}
    memberships = []
    mine = set(rng.sample(range(conversations), SEARCHER_CONVERSATIONS))
    for index, conversation in enumerate(rows):
        people = rng.sample(others, 2) + ([searcher] if index in mine else [])
        members[conversation.pk] = [person.pk for person in people]
        memberships += [Membership(conversation=conversation, user=person) for person in people]
    Membership.objects.bulk_create(memberships, batch_size=5000)

    zh_weights, en_weights = weights(CHINESE), weights(ENGLISH)
    first = now - timedelta(days=365)
    step = timedelta(days=365) / messages
    raw = connection.connection
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS chat_message_search_document")
        cursor.execute("SELECT nextval(pg_get_serial_sequence('chat_message', 'id'))")
        next_id = cursor.fetchone()[0]
    conversation_ids = [conversation.pk for conversation in rows]
    message_copy = io.StringIO()
    search_copy = io.StringIO()
    seqs = dict.fromkeys(conversation_ids, 0)
    for n in range(messages):
        conversation_id = conversation_ids[n % conversations]
        seqs[conversation_id] += 1
        text = chat_text(rng, zh_weights, en_weights)
        message_id = next_id + n
        sender = rng.choice(members[conversation_id])
        created = (first + step * n).isoformat()
        message_copy.write(f"{message_id}\t{conversation_id}\t{seqs[conversation_id]}\t{sender}\ttext\t{text}\t\t")
        message_copy.write(f"sent\t{created}\t[]\tf\n")
        document = tsvector_literal(scoped_tokens(conversation_id, document_tokens(text)))
        search_copy.write(f"{message_id}\t{conversation_id}\t{sender}\t{document}\n")
    print(f"  texts and tokens made: {time.monotonic() - started:.0f} s", flush=True)
    with raw.cursor() as cursor:
        columns = (
            "id, conversation_id, seq, sender_id, type, content, caption, status, created_at, mentions, mentions_all"
        )
        with cursor.copy(f"COPY chat_message ({columns}) FROM STDIN") as copy:
            copy.write(message_copy.getvalue())
        with cursor.copy(
            "COPY chat_message_search (message_id, conversation_id, sender_id, document) FROM STDIN"
        ) as copy:
            copy.write(search_copy.getvalue())
        cursor.execute("SELECT setval(pg_get_serial_sequence('chat_message', 'id'), %s)", [next_id + messages])
        cursor.execute("SET maintenance_work_mem = '256MB'")
        migration = importlib.import_module("chat.migrations.0005_message_search")
        cursor.execute(migration.POSTGRES[1])  # the GIN index, built once over all rows
    raw.commit()
    with connection.cursor() as cursor:
        for table in ("accounts_user", "chat_conversation", "chat_membership", "chat_message", "chat_message_search"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    print(f"  {messages} messages generated in {time.monotonic() - started:.0f} s", flush=True)


def timed(function, repeats):
    """Milliseconds of each call, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


_ILIKE = """
SELECT m.id, COUNT(*) OVER () FROM chat_message m
WHERE m.content ILIKE %(pattern)s AND m.status <> 'removed'
  AND m.conversation_id IN (SELECT conversation_id FROM chat_membership WHERE user_id = %(user)s)
ORDER BY m.id DESC LIMIT 20
"""


def ilike_search(user, query):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_ILIKE, {"pattern": f"%{query}%", "user": user.pk})
        return cursor.fetchall()


def latency_figures(label, search, user, repeats):
    figures = {}
    for kind, queries in QUERIES.items():
        times = []
        for query in queries:
            times += timed(lambda query=query: search(user, query), repeats)
        times.sort()
        figures[f"{kind} p50 ms"] = statistics.median(times)
        figures[f"{kind} p95 ms"] = percentile(times, 0.95)
    figures["load average (1 min)"] = os.getloadavg()[0]  # the machine is shared: figures scale with it
    report(f"search latency: {label}", figures, COMMAND)
    return figures


def index_search(user, query):
    from chat.search import messages_search

    return messages_search(user=user, query=query, limit=20, offset=0)


SEND_MODES = {
    "no index": "the bare INSERT",
    "index, one statement": "the INSERT and the index row in one statement (chat.search.message_insert)",
    "index, second statement": "the bare INSERT, then the index row in a statement of its own (as before)",
}


def send_rate(user, conversation_ids, sends, mode, seed):
    """Sends per second through chat.services.message_send with the index written as `mode` says."""
    from chat import search
    from chat.services import message_send

    rng = random.Random(seed)
    zh_weights, en_weights = weights(CHINESE), weights(ENGLISH)
    texts = [chat_text(rng, zh_weights, en_weights) for _ in range(sends)]
    targets = [rng.choice(conversation_ids) for _ in range(sends)]
    real_document, real_insert = search.message_document, search.message_insert

    def insert_then_index(cursor, insert_sql, params, message, then=""):
        search.message_document = lambda message: None
        try:
            message_id = real_insert(cursor, insert_sql, params, message, then)
        finally:
            search.message_document = real_document
        message.pk = message_id
        search.message_index_update(message)
        return message_id

    if mode == "no index":
        search.message_document = lambda message: None
    elif mode == "index, second statement":
        search.message_insert = insert_then_index
    try:
        started = time.perf_counter()
        for text, conversation_id in zip(texts, targets, strict=True):
            message_send(sender=user, conversation_id=conversation_id, content=text)
        return sends / (time.perf_counter() - started)
    finally:
        search.message_document, search.message_insert = real_document, real_insert


def sender_and_conversations():
    """The user the sends come from, in 200 conversations of their own: the searcher's data set
    stays the same from one run to the next."""
    from django.contrib.auth.hashers import make_password

    from accounts.models import User
    from chat.models import Conversation, Membership

    sender = User.objects.filter(username=SENDER).first()
    if sender is None:
        sender = User.objects.create(
            username=SENDER, email="sender@bench.invalid", password=make_password("Bench-password-1")
        )
        others = list(User.objects.filter(username__startswith="sb").order_by("pk")[:SEARCHER_CONVERSATIONS])
        rows = Conversation.objects.bulk_create(
            [Conversation(type=Conversation.Type.GROUP) for _ in range(SEARCHER_CONVERSATIONS)]
        )
        Membership.objects.bulk_create(
            [
                Membership(conversation=c, user=person)
                for c, other in zip(rows, others, strict=True)
                for person in (sender, other)
            ]
        )
    return sender, list(Membership.objects.filter(user=sender).values_list("conversation_id", flat=True))


def send_figures(sends, rounds):
    """Rounds of each mode, interleaved (the machine is shared: its load drifts); the median
    round of each mode."""
    user, conversation_ids = sender_and_conversations()
    rates = {mode: [] for mode in SEND_MODES}
    modes = list(SEND_MODES)
    for round_ in range(rounds):
        for mode in modes[round_ % 3 :] + modes[: round_ % 3]:  # each mode first in turn
            rates[mode].append(send_rate(user, conversation_ids, sends, mode, seed=round_))
    for mode, values in rates.items():
        print(f"  {mode}: {' '.join(f'{rate:.0f}' for rate in values)} sends/s", flush=True)
    median = {mode: statistics.median(values) for mode, values in rates.items()}
    figures = {f"sends/s, {mode}": rate for mode, rate in median.items()}
    for mode in list(SEND_MODES)[1:]:
        figures[f"slowdown %, {mode}"] = 100 * (1 - median[mode] / median["no index"])
    figures["load average (1 min)"] = os.getloadavg()[0]
    report(f"sends with and without the search index ({rounds} rounds of {sends} each way)", figures, COMMAND)


def sizes():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT pg_total_relation_size('chat_message'), pg_relation_size('chat_message_search'),
                      pg_relation_size('chat_message_search_document'),
                      (SELECT sum(octet_length(content)) FROM chat_message)"""
        )
        table, search_table, search_index, text_bytes = cursor.fetchone()
    mb = 1024 * 1024
    return {
        "messages table with its indexes MB": table / mb,
        "message text MB": text_bytes / mb,
        "search table MB": search_table / mb,
        "search GIN index MB": search_index / mb,
    }


def with_trigram_index(user, repeats):
    """pg_trgm's GIN index on content and the ILIKE search over it; None without the extension."""
    from django.db import DatabaseError, connection, transaction

    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        print(f"  pg_trgm unavailable: {exc}")
        return None
    with connection.cursor() as cursor:
        started = time.monotonic()
        cursor.execute("SET maintenance_work_mem = '256MB'")
        cursor.execute("CREATE INDEX bench_message_trgm ON chat_message USING gin (content gin_trgm_ops)")
        built = time.monotonic() - started
        cursor.execute("ANALYZE chat_message")
        cursor.execute("SELECT pg_relation_size('bench_message_trgm')")
        size = cursor.fetchone()[0] / (1024 * 1024)
    try:
        figures = latency_figures("ILIKE with a pg_trgm GIN index", ilike_search, user, repeats)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX bench_message_trgm")
    report("pg_trgm index", {"trigram GIN index MB": size, "build s": built}, COMMAND)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--regenerate", action="store_true", help="make the data set again")
    parser.add_argument("--repeats", type=int, default=25, help="timed runs of each query")
    parser.add_argument("--sends", type=int, default=200, help="sends per round (default 200)")
    parser.add_argument("--rounds", type=int, default=10, help="send rounds of each mode, interleaved (default 10)")
    parser.add_argument("--skip-trgm", action="store_true")
    parser.add_argument("--only", choices=["search", "sends"], help="measure only searches, or only sends")
    args = parser.parse_args(argv)

    create_database()
    django_setup()
    from accounts.models import User
    from chat.models import Message

    user = User.objects.filter(username=SEARCHER).first()
    if args.regenerate or user is None or Message.objects.count() < args.messages:
        generate(args.messages, args.conversations)
        user = User.objects.get(username=SEARCHER)
    print(f"  {Message.objects.count()} messages, the user's: "
          f"{Message.objects.filter(conversation__memberships__user=user).count()}", flush=True)  # fmt: skip

    print(f"  load average before: {os.getloadavg()}", flush=True)
    ours = None
    if args.only != "sends":
        ours = latency_figures("chat.search (bigram tsvector, GIN)", index_search, user, args.repeats)
        latency_figures("ILIKE '%q%' without an index", ilike_search, user, args.repeats)
        if not args.skip_trgm:
            with_trigram_index(user, args.repeats)
    if args.only != "search":
        send_figures(args.sends, args.rounds)
    report("search index size", sizes(), COMMAND)
    print(f"  load average after: {os.getloadavg()}", flush=True)
    if ours:
        worst = max(value for key, value in ours.items() if key.endswith("p95 ms"))
        print(f"\nsearch p95 <= 100 ms: {'met' if worst <= 100 else 'NOT met'} (worst {worst:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
