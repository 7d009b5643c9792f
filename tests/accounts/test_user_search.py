"""users/search through the name tokens (imserver/namesearch.py), on the database in use: Chinese
by substring, one character, full and half width, case, the index following every name change."""

import io

import pytest
from django.core.management import call_command

from accounts.models import User
from accounts.services import user_update_profile
from contacts.services import block_create
from privacy.services import user_delete
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def found(client, query, **params):
    response = client.get("/v1/users/search", {"query": query, **params})
    assert response.status_code == 200, response.json()
    return sorted(user["username"] for user in response.json()["users"])


class TestMatching:
    def test_chinese_nickname_by_substring(self, user_api):
        make_user("east", nickname="我家在上海东边")
        make_user("sea", nickname="海上的东边")
        assert found(user_api, "上海") == ["east"]
        assert found(user_api, "海东边") == ["east"]
        assert found(user_api, "东边") == ["east", "sea"]
        assert found(user_api, "上海的") == []

    def test_one_character(self, user_api):
        make_user("east", nickname="我家在上海东边")
        make_user("west", nickname="西边")
        assert found(user_api, "上") == ["east"]
        assert found(user_api, "边") == ["east", "west"]  # the last character of a name
        assert found(user_api, "z") == []
        make_user("zed", nickname="Z")
        assert found(user_api, "Z") == ["zed"]

    def test_username_by_substring_in_any_position(self, user_api):
        make_user("janedoe", nickname="Jane")
        assert found(user_api, "ned") == ["janedoe"]
        assert found(user_api, "J") == ["janedoe"]
        assert found(user_api, "janedoex") == []

    def test_full_width_half_width_and_case(self, user_api):
        make_user("wide", nickname="ＪＡＮＥ　ＤＯＥ")
        make_user("kana", nickname="ｶﾀｶﾅ")
        make_user("strasse", nickname="Straße")
        assert found(user_api, "jane do") == ["wide"]
        assert found(user_api, "ＷＩＤ") == ["wide"]
        assert found(user_api, "カタカ") == ["kana"]
        assert found(user_api, "STRASS") == ["strasse"]

    def test_mixed_scripts_and_emoji(self, user_api):
        make_user("ming", nickname="小明Flutter开发😀")
        assert found(user_api, "明flu") == ["ming"]
        assert found(user_api, "ter开") == ["ming"]
        assert found(user_api, "😀") == ["ming"]
        assert found(user_api, "发😀") == ["ming"]

    def test_spaces_and_punctuation_only_separate(self, user_api):
        make_user("john.smith", nickname="Mr John Smith")
        assert found(user_api, "john smith") == ["john.smith"]
        assert found(user_api, "n.s") == ["john.smith"]
        assert found(user_api, "johnsmith") == []
        assert found(user_api, "...") == []

    def test_never_across_username_and_nickname(self, user_api):
        make_user("abc", nickname="Def")
        assert found(user_api, "cd") == []
        assert found(user_api, "c d") == []
        assert found(user_api, "abc") == ["abc"] and found(user_api, "def") == ["abc"]


class TestWhoIsFound:
    def test_not_by_whoever_blocked_them_and_never_banned(self, user, other_user, user_api):
        other_user.nickname = "上海小王"
        other_user.save(update_fields=["nickname"])
        assert found(user_api, "上海") == [other_user.username]
        block_create(owner=other_user, user_id=user.pk)
        assert found(user_api, "上海") == []

    def test_an_erased_account_is_never_found_by_its_old_names(self, user_api):
        gone = make_user("wangxiaoming", nickname="王小明")
        user_delete(user=gone)
        assert found(user_api, "小明") == [] and found(user_api, "wangx") == []
        # Not even in the index itself: the tombstone's tokens replaced the old ones.
        assert not User.objects.filter(search_document__matches="小明").exists()
        assert not User.objects.filter(search_document__matches="wangx").exists()
        assert User.objects.filter(search_document__matches="deleted user").get() == gone


class TestIndexFollowsChanges:
    def test_a_profile_change(self, user_api, other_user):
        user_update_profile(user=other_user, nickname="北京小李")
        assert found(user_api, "北京") == [other_user.username]
        user_update_profile(user=other_user, nickname="深圳小李")
        assert found(user_api, "北京") == [] and found(user_api, "深圳") == [other_user.username]

    def test_a_status_message_change_keeps_the_names(self, user_api, other_user):
        user_update_profile(user=other_user, status_message="busy")
        assert found(user_api, other_user.nickname) == [other_user.username]

    def test_a_rename_saved_any_way(self, user_api, other_user):
        other_user.username = "renamed"
        other_user.save()
        assert found(user_api, "renam") == ["renamed"]

    def test_bulk_created_users_are_indexed(self, user_api):
        User.objects.bulk_create([User(username="bulk1", nickname="批量"), User(username="bulk2", nickname="x")])
        assert found(user_api, "批") == ["bulk1"]

    def test_a_rolled_back_change_leaves_the_old_names(self, user_api, other_user):
        from django.db import transaction

        with pytest.raises(RuntimeError), transaction.atomic():
            user_update_profile(user=other_user, nickname="回滚")
            raise RuntimeError
        assert found(user_api, "回滚") == []
        assert found(user_api, "Bob") == ["bob"]

    def test_search_reindex_repairs_names_changed_behind_its_back(self, user_api, other_user):
        User.objects.filter(pk=other_user.pk).update(nickname="绕过")  # no save(): not indexed
        assert found(user_api, "绕过") == []
        out = io.StringIO()
        call_command("search_reindex", "--batch-size", "1", stdout=out)
        assert found(user_api, "绕过") == [other_user.username]
        assert "2/2 users indexed" in out.getvalue() and "Name search rebuilt: 0 groups." in out.getvalue()


@pytest.mark.parametrize("rows", [1, 50])
def test_constant_queries(user_api, rows, django_assert_max_num_queries):
    for i in range(rows):
        make_user(f"needle{i:02d}", nickname=f"针{i}")
    with django_assert_max_num_queries(3):  # auth, the page, its count
        body = user_api.get("/v1/users/search", {"query": "针", "limit": 100}).json()
    assert body["total"] == rows == len(body["users"])
