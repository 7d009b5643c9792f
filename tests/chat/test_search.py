"""GET /v1/messages/search (contract 20), against the real index of the database in use."""

import pytest
from django.core.management import call_command

from chat import search
from chat.models import Message
from chat.services import message_remove
from groups.services import group_member_leave
from privacy.services import user_delete
from tests.conftest import client_for, group_of, is_postgres, make_user, private_chat, send


def found(client, q, **params):
    response = client.get("/v1/messages/search", {"q": q, **params})
    assert response.status_code == 200, response.json()
    return [message["content"] for message in response.json()["messages"]]


@pytest.fixture
def chat(user, other_user):
    return private_chat(user, other_user)


class TestMatching:
    def test_the_contracts_examples(self, user_api, user, chat):
        send(user, chat, "我家在上海东边")
        send(user, chat, "海上的东边")
        send(user, chat, "Flutter 上线了")
        assert found(user_api, "上海") == ["我家在上海东边"]
        assert found(user_api, "flut") == ["Flutter 上线了"]
        assert found(user_api, "flutter") == ["Flutter 上线了"]
        assert found(user_api, "上线") == ["Flutter 上线了"]

    def test_one_character(self, user_api, user, chat):
        send(user, chat, "我家在上海东边")
        send(user, chat, "海上的东边")
        send(user, chat, "西边")
        assert found(user_api, "上") == ["海上的东边", "我家在上海东边"]
        assert found(user_api, "西") == ["西边"]
        assert found(user_api, "边") == ["西边", "海上的东边", "我家在上海东边"]

    def test_mixed_scripts(self, user_api, user, chat):
        send(user, chat, "明天用Flutter写app吧")
        send(user, chat, "flutter is great")
        assert found(user_api, "用flutter写") == ["明天用Flutter写app吧"]
        assert found(user_api, "flutter写a") == ["明天用Flutter写app吧"]
        assert found(user_api, "Flutter") == ["flutter is great", "明天用Flutter写app吧"]
        assert found(user_api, "is great") == ["flutter is great"]
        assert found(user_api, "great is") == []

    def test_full_width_and_half_width_forms(self, user_api, user, chat):
        send(user, chat, "ＦＬＵＴＴＥＲ３")
        send(user, chat, "ｶﾀｶﾅで書く")
        assert found(user_api, "flutter3") == ["ＦＬＵＴＴＥＲ３"]
        assert found(user_api, "Ｆｌｕ") == ["ＦＬＵＴＴＥＲ３"]
        assert found(user_api, "カタカナ") == ["ｶﾀｶﾅで書く"]

    def test_korean_and_japanese_by_substring(self, user_api, user, chat):
        send(user, chat, "한국어 공부를 합니다")
        send(user, chat, "東京タワーに行きました")
        assert found(user_api, "국어") == ["한국어 공부를 합니다"]
        assert found(user_api, "공") == ["한국어 공부를 합니다"]
        assert found(user_api, "タワー") == ["東京タワーに行きました"]
        assert found(user_api, "京タ") == ["東京タワーに行きました"]
        assert found(user_api, "어공") == []  # the space separates

    def test_emoji(self, user_api, user, chat):
        send(user, chat, "好的😀明天见")
        assert found(user_api, "😀") == ["好的😀明天见"]
        assert found(user_api, "好的") == ["好的😀明天见"]
        assert found(user_api, "明天见") == ["好的😀明天见"]
        assert found(user_api, "的明") == []  # the emoji separates them

    def test_captions_are_searched(self, user_api, user, chat):
        message = send(user, chat, "hello")
        Message.objects.filter(pk=message.pk).update(type=Message.Type.IMAGE, caption="海边的照片")
        message.refresh_from_db()
        search.message_index_update(message)
        body = user_api.get("/v1/messages/search", {"q": "海边"}).json()
        assert [m["message_id"] for m in body["messages"]] == [f"m{message.pk}"]

    def test_a_query_of_punctuation_finds_nothing(self, user_api, user, chat):
        send(user, chat, "!!!")
        assert found(user_api, "!!!") == []


class TestScope:
    def test_never_from_a_conversation_never_joined(self, user_api, user, other_user, stranger):
        send(other_user, private_chat(other_user, stranger), "secret 上海")
        assert found(user_api, "上海") == []
        assert found(user_api, "secret") == []

    def test_never_from_a_group_the_caller_left(self, user, other_user, user_api):
        group = group_of(other_user, user)
        send(other_user, group.conversation, "group 上海")
        assert found(user_api, "上海") == ["group 上海"]
        group_member_leave(user=user, group_id=group.pk)
        assert found(user_api, "上海") == []

    def test_filters_by_conversation_and_sender(self, user_api, user, other_user, chat):
        group = group_of(user, other_user)
        send(user, chat, "hi one")
        send(other_user, chat, "hi two")
        send(other_user, group.conversation, "hi three")
        assert found(user_api, "hi") == ["hi three", "hi two", "hi one"]
        assert found(user_api, "hi", conversation_id=f"c{chat.pk}") == ["hi two", "hi one"]
        assert found(user_api, "hi", sender_id=str(other_user.pk)) == ["hi three", "hi two"]
        assert found(user_api, "hi", conversation_id=f"c{chat.pk}", sender_id=str(other_user.pk)) == ["hi two"]

    def test_someone_elses_conversation_filter_is_404(self, user_api, other_user, stranger):
        theirs = private_chat(other_user, stranger)
        for value in (f"c{theirs.pk}", "c99999", "x1"):
            response = user_api.get("/v1/messages/search", {"q": "hi", "conversation_id": value})
            assert response.status_code == 404, value

    def test_a_malformed_sender_is_400(self, user_api):
        assert user_api.get("/v1/messages/search", {"q": "hi", "sender_id": "u1"}).status_code == 400


class TestIndexFollowsChanges:
    def test_a_removed_message_is_never_found_again(self, user_api, user, other_user, chat):
        message = send(other_user, chat, "buy cheap 上海 stuff")
        assert found(user_api, "cheap") == ["buy cheap 上海 stuff"]
        message_remove(message=message)
        assert found(user_api, "cheap") == []
        assert found(user_api, "上海") == []
        call_command("search_reindex", stdout=open("/dev/null", "w"))  # noqa: SIM115
        assert found(user_api, "cheap") == []

    def test_removed_messages_are_excluded_even_if_still_indexed(self, user_api, user, chat):
        message = send(user, chat, "stale text")
        Message.objects.filter(pk=message.pk).update(status=Message.Status.REMOVED)
        assert found(user_api, "stale") == []

    def test_index_update_follows_an_edit(self, user_api, user, chat):
        message = send(user, chat, "old words")
        message.content = "新的内容"
        message.save(update_fields=["content"])
        search.message_index_update(message)
        assert found(user_api, "old") == []
        assert found(user_api, "内容") == ["新的内容"]

    def test_index_update_of_a_removed_message_takes_it_out(self, user_api, user, chat):
        message = send(user, chat, "recalled words")
        message.status, message.content = Message.Status.REMOVED, ""
        message.save(update_fields=["status", "content"])
        search.message_index_update(message)
        Message.objects.filter(pk=message.pk).update(status=Message.Status.SENT, content="recalled words")
        assert found(user_api, "recalled") == []  # gone from the index itself

    def test_index_remove(self, user_api, user, chat):
        message = send(user, chat, "hidden words")
        search.message_index_remove(message)
        assert found(user_api, "hidden") == []

    def test_a_rolled_back_send_leaves_nothing_in_the_index(self, user_api, user, chat):
        from django.db import transaction

        with pytest.raises(RuntimeError), transaction.atomic():
            send(user, chat, "never sent")
            raise RuntimeError
        send(user, chat, "never mind")
        assert found(user_api, "never") == ["never mind"]

    def test_an_erased_senders_messages_stay_found_by_the_others(self, user, other_user, chat):
        send(user, chat, "from alice 上海")
        user_delete(user=user)
        assert found(client_for(other_user), "上海") == ["from alice 上海"]

    def test_rebuild_indexes_messages_that_predate_the_index(self, user_api, user, chat):
        for i in range(5):
            send(user, chat, f"old message {i}")
        search.message_index_remove(Message.objects.get(content="old message 3"))
        assert len(found(user_api, "old")) == 4
        out = []

        class Out:
            def write(self, text):
                out.append(text)

            def flush(self):
                pass

        call_command("search_reindex", "--batch-size", "2", stdout=Out())
        assert len(found(user_api, "old")) == 5
        assert "2/5 messages indexed" in "".join(out) and "rebuilt: 5 messages" in "".join(out)


def reindexed():
    call_command("search_reindex", stdout=open("/dev/null", "w"))  # noqa: SIM115


class TestNeverFoundAgain:
    """Through the services the app and the moderators use; a rebuilt index does not bring any
    of them back."""

    def test_a_recalled_message(self, user_api, user, other_user, chat):
        from chat.services import message_recall

        message = send(user, chat, "撤回的上海消息")
        message_recall(user=user, conversation_id=chat.pk, message_id=message.pk)
        for client in (user_api, client_for(other_user)):
            assert found(client, "上海") == [] and found(client, "撤") == []
        reindexed()
        assert found(client_for(other_user), "上海") == []

    def test_a_moderators_takedown(self, user_api, user, other_user):
        from moderation.services import message_takedown

        group = group_of(user, other_user)
        message = send(other_user, group.conversation, "违规的广告 spam")
        message_takedown(actor="cli:ops", message=message, reason="spam")
        assert found(user_api, "广告") == [] and found(user_api, "spam") == []
        reindexed()
        assert found(user_api, "广告") == []

    def test_an_edits_old_words(self, user_api, user, other_user, chat):
        from chat.services import message_edit

        message = send(user, chat, "旧的说法 old")
        message_edit(user=user, conversation_id=chat.pk, message_id=message.pk, content="新的说法 new")
        assert found(user_api, "旧的") == [] and found(user_api, "old") == []
        assert found(client_for(other_user), "新的") == ["新的说法 new"]

    def test_a_hidden_message_for_the_one_who_hid_it(self, user_api, user, other_user, chat):
        from chat.services import message_hide

        message = send(other_user, chat, "删除的消息")
        message_hide(user=user, conversation_id=chat.pk, message_id=message.pk)
        reindexed()
        assert found(user_api, "删除") == []
        assert found(client_for(other_user), "删除") == ["删除的消息"]

    def test_a_cleared_conversation_up_to_the_clear(self, user_api, user, other_user, chat):
        from chat.services import conversation_clear

        send(other_user, chat, "清空之前")
        conversation_clear(user=user, conversation_id=chat.pk)
        send(other_user, chat, "清空之后")
        reindexed()
        assert found(user_api, "清空") == ["清空之后"]
        assert found(client_for(other_user), "清空") == ["清空之后", "清空之前"]

    def test_an_erased_account_searches_nothing(self, user, other_user, chat):
        send(other_user, chat, "给你的上海消息")
        user_delete(user=user)
        user.refresh_from_db()
        assert search.messages_search(user=user, query="上海", limit=20, offset=0) == (0, [])


class TestIndexedBySend:
    def test_a_send_writes_its_index_row_in_its_own_insert(self, user_api, user, chat):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as captured:
            send(user, chat, "一条新消息")
        writes = [q["sql"] for q in captured if "chat_message_search" in q["sql"]]
        if is_postgres():  # one statement for the message and its index row (docs/search.md)
            assert len(writes) == 1 and "INSERT INTO chat_message\n" in writes[0]
        else:
            assert len(writes) == 1
        assert found(user_api, "新消息") == ["一条新消息"]

    def test_a_forwarded_copy_is_found_in_its_new_conversation(self, user, other_user, stranger, chat):
        from chat.forwarding import messages_forward

        original = send(user, chat, "转发的上海照片")
        theirs = private_chat(user, stranger)
        messages_forward(forwarder=user, message_ids=[original.pk], conversation_ids=[theirs.pk])
        assert found(client_for(stranger), "上海") == ["转发的上海照片"]
        assert found(client_for(other_user), "上海") == ["转发的上海照片"]

    def test_call_records_are_not_indexed(self, user_api, user, other_user, chat):
        from chat.services import message_store_call

        call = message_store_call(
            caller=user, conversation_id=chat.pk, call_id="call1", call_type="audio", status="missed", duration=None
        )
        assert found(user_api, "call1") == []
        assert not search.message_document(call)


class TestParams:
    @pytest.mark.parametrize("q", ["", "   ", "x" * 101])
    def test_empty_or_too_long_q_is_400(self, user_api, q):
        response = user_api.get("/v1/messages/search", {"q": q})
        assert response.status_code == 400
        assert response.json()["code"] == 400 and "q" in response.json()["fields"]

    def test_missing_q_is_400(self, user_api):
        assert user_api.get("/v1/messages/search").status_code == 400

    def test_hundred_characters_is_fine(self, user_api, user, chat):
        send(user, chat, "上" * 100)
        assert len(found(user_api, "上" * 100)) == 1

    def test_paging_with_total(self, user_api, user, chat):
        for i in range(5):
            send(user, chat, f"page {i}")
        body = user_api.get("/v1/messages/search", {"q": "page", "limit": 2, "offset": 2}).json()
        assert body["total"] == 5 and [m["content"] for m in body["messages"]] == ["page 2", "page 1"]
        body = user_api.get("/v1/messages/search", {"q": "page", "limit": 2, "offset": 9}).json()
        assert body == {"total": 5, "messages": []}

    def test_read_status(self, user_api, user, other_user, chat):
        from chat.services import conversation_mark_read

        first = send(user, chat, "status one")
        send(user, chat, "status two")
        conversation_mark_read(user=other_user, conversation_id=chat.pk, message_id=first.pk)
        body = user_api.get("/v1/messages/search", {"q": "status"}).json()
        assert [m["status"] for m in body["messages"]] == ["sent", "read"]

    @pytest.mark.parametrize("rows", [1, 50])
    def test_constant_queries(self, user_api, user, rows, django_assert_max_num_queries):
        for i in range(rows):
            peer = make_user(f"q{i:02d}")
            send(peer, private_chat(user, peer), f"needle {i}")
        # auth, (PostgreSQL: the caller's conversations, the plan's settings in a savepoint of
        # their own: three more), the page with its total and senders, the read pointers of its
        # conversations
        with django_assert_max_num_queries(7):
            body = user_api.get("/v1/messages/search", {"q": "needle", "limit": 100}).json()
        assert body["total"] == rows == len(body["messages"])
