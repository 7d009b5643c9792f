import base64

import pytest

from chat.models import Conversation, Membership
from groups.models import Group
from tests.accounts.test_auth import assert_error
from tests.accounts.test_users import png_bytes
from tests.conftest import client_for, events_of, group_of, make_user, send

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db):
    """owner, admin, member, outsider (a stranger to the group)."""
    return make_user("olive"), make_user("adam"), make_user("mia"), make_user("sam")


@pytest.fixture
def group(people):
    owner, admin, member, _ = people
    group = group_of(owner, admin, member, name="Project Team")
    Membership.objects.filter(conversation=group.conversation, user=admin).update(role="admin")
    return group


def role_of(group, user):
    return Membership.objects.filter(conversation=group.conversation, user=user).values_list("role", flat=True).first()


def group_updates(user):
    return [(e["data"]["update_type"], e["data"]["user_id"]) for e in events_of(user, "group_update")]


class TestInfo:
    def test_member_sees_info(self, group, people):
        owner, _, member, _ = people
        body = client_for(member).get(f"/v1/groups/g{group.pk}").json()
        assert body == {
            "group_id": f"g{group.pk}",
            "conversation_id": f"c{group.conversation_id}",
            "name": "Project Team",
            "avatar": None,
            "owner_id": str(owner.pk),
            "member_count": 3,
            "announcement": "",
            "created_at": body["created_at"],
        }

    def test_outsider_gets_404_everywhere(self, group, people):
        owner, _, member, outsider = people
        client = client_for(outsider)
        base = f"/v1/groups/g{group.pk}"
        assert_error(client.get(base), 404)
        assert_error(client.patch(base, {"name": "Mine"}, format="json"), 404)
        assert_error(client.get(f"{base}/members"), 404)
        assert_error(client.post(f"{base}/members", {"user_ids": [str(outsider.pk)]}, format="json"), 404)
        assert_error(client.delete(f"{base}/members/{member.pk}"), 404)
        assert_error(client.patch(f"{base}/members/{member.pk}", {"role": "admin"}, format="json"), 404)
        assert_error(client.get(f"/v1/conversations/c{group.conversation_id}"), 404)
        assert Group.objects.get().name == "Project Team"
        assert role_of(group, member) == "member" and role_of(group, outsider) is None

    @pytest.mark.parametrize("path", ["g999999", "123", "gx"])
    def test_unknown_group_is_404(self, people, path):
        assert_error(client_for(people[0]).get(f"/v1/groups/{path}"), 404)


class TestUpdate:
    @pytest.mark.parametrize("who, status", [(0, 200), (1, 200), (2, 403)])
    def test_owner_and_admin_may_update(self, group, people, who, status):
        response = client_for(people[who]).patch(
            f"/v1/groups/g{group.pk}", {"name": "Alpha", "announcement": "Friday"}, format="json"
        )
        assert response.status_code == status
        group.refresh_from_db()
        if status == 200:
            assert response.json()["name"] == "Alpha" and response.json()["announcement"] == "Friday"
            assert (group.name, group.announcement) == ("Alpha", "Friday")
            assert ("info_updated", str(people[who].pk)) in group_updates(people[2])
        else:
            assert_error(response, 403)
            assert group.name == "Project Team"

    def test_avatar(self, group, people, settings, tmp_path):
        settings.MEDIA_ROOT = tmp_path
        avatar = "base64:" + base64.b64encode(png_bytes()).decode()
        response = client_for(people[0]).patch(f"/v1/groups/g{group.pk}", {"avatar": avatar}, format="json")
        assert response.json()["avatar"].startswith("http://testserver/media/avatars/")

    @pytest.mark.parametrize("body", [{"name": ""}, {"name": "n" * 65}, {"owner_id": "1"}, {"member_count": 9}])
    def test_invalid(self, group, people, body):
        assert_error(client_for(people[0]).patch(f"/v1/groups/g{group.pk}", body, format="json"), 400)


class TestMembers:
    def test_list_owner_first_with_roles(self, group, people):
        owner, admin, member, _ = people
        body = client_for(member).get(f"/v1/groups/g{group.pk}/members").json()
        assert body["total"] == 3
        assert [(m["user_id"], m["role"]) for m in body["members"]] == [
            (str(owner.pk), "owner"),
            (str(admin.pk), "admin"),
            (str(member.pk), "member"),
        ]
        assert set(body["members"][0]) == {"user_id", "username", "nickname", "avatar", "role", "status", "joined_at"}

    @pytest.mark.parametrize("rows", [1, 50])
    def test_constant_queries(self, people, rows, django_assert_max_num_queries):
        group = group_of(people[0], *[make_user(f"x{i:02d}") for i in range(rows - 1)])
        client = client_for(people[0])
        # auth, membership, the page with its total, what the caller may see of their presence
        with django_assert_max_num_queries(4):
            assert len(client.get(f"/v1/groups/g{group.pk}/members").json()["members"]) == rows

    def test_any_member_invites_and_existing_are_skipped(self, group, people):
        owner, admin, member, outsider = people
        newcomer = make_user("nina")
        response = client_for(member).post(
            f"/v1/groups/g{group.pk}/members",
            {"user_ids": [str(outsider.pk), str(admin.pk), str(newcomer.pk)]},
            format="json",
        )
        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "invited_users": sorted([str(outsider.pk), str(newcomer.pk)], key=int),
        }
        assert role_of(group, outsider) == "member"
        assert group_updates(owner)[-2:] == [("new_member", str(outsider.pk)), ("new_member", str(newcomer.pk))]
        assert group_updates(outsider) == [("new_member", str(outsider.pk))]
        assert group_updates(newcomer) == [("new_member", str(newcomer.pk))]

    def test_a_member_removed_while_waiting_for_the_lock_gets_404(self, group, people, monkeypatch):
        from groups import selectors

        owner, _, member, outsider = people
        original = selectors.group_for_member

        def removed_meanwhile(*, user, group_id):
            membership = original(user=user, group_id=group_id)
            Membership.objects.filter(pk=membership.pk).delete()  # as a concurrent removal commits
            return membership

        monkeypatch.setattr(selectors, "group_for_member", removed_meanwhile)
        response = client_for(member).post(
            f"/v1/groups/g{group.pk}/members", {"user_ids": [str(outsider.pk)]}, format="json"
        )
        assert_error(response, 404)
        assert role_of(group, outsider) is None

    def test_invited_member_sees_conversation_without_backlog(self, group, people):
        owner, _, _, outsider = people
        send(owner, group.conversation, "before you came")
        client_for(owner).post(f"/v1/groups/g{group.pk}/members", {"user_ids": [str(outsider.pk)]}, format="json")
        item = client_for(outsider).get(f"/v1/conversations/c{group.conversation_id}").json()
        assert item["unread_count"] == 0 and item["target_name"] == "Project Team"
        send(owner, group.conversation, "welcome")
        assert events_of(outsider, "new_message")[-1]["data"]["content"] == "welcome"

    def test_unknown_invitee_is_400_and_nothing_changes(self, group, people):
        response = client_for(people[0]).post(
            f"/v1/groups/g{group.pk}/members", {"user_ids": [str(people[3].pk), "999999"]}, format="json"
        )
        assert "user_ids" in assert_error(response, 400)["fields"]
        assert role_of(group, people[3]) is None

    def test_invite_respects_size_limit(self, group, people, settings):
        settings.GROUP_MAX_MEMBERS = 3
        response = client_for(people[0]).post(
            f"/v1/groups/g{group.pk}/members", {"user_ids": [str(people[3].pk)]}, format="json"
        )
        assert "user_ids" in assert_error(response, 400)["fields"]

    @pytest.mark.parametrize("body", [{}, {"user_ids": []}, {"user_ids": "12"}])
    def test_invite_invalid_body(self, group, people, body):
        assert_error(client_for(people[0]).post(f"/v1/groups/g{group.pk}/members", body, format="json"), 400)


class TestRemoveAndLeave:
    def remove(self, actor, group, target):
        return client_for(actor).delete(f"/v1/groups/g{group.pk}/members/{target.pk}")

    def test_member_leaves(self, group, people):
        owner, _, member, _ = people
        assert self.remove(member, group, member).status_code == 204
        assert role_of(group, member) is None
        assert ("member_left", str(member.pk)) in group_updates(owner)
        assert ("member_left", str(member.pk)) in group_updates(member)
        assert_error(client_for(member).get(f"/v1/groups/g{group.pk}"), 404)
        send(owner, group.conversation, "after you left")
        assert all(e["data"]["content"] != "after you left" for e in events_of(member, "new_message"))

    def test_admin_removes_member(self, group, people):
        owner, admin, member, _ = people
        assert self.remove(admin, group, member).status_code == 204
        assert role_of(group, member) is None
        assert ("member_removed", str(member.pk)) in group_updates(owner)
        assert ("member_removed", str(member.pk)) in group_updates(member)

    def test_admin_cannot_remove_owner_or_admin(self, group, people):
        owner, admin, _, _ = people
        second_admin = make_user("ada")
        Membership.objects.create(conversation=group.conversation, user=second_admin, role="admin")
        assert_error(self.remove(admin, group, owner), 403)
        assert_error(self.remove(admin, group, second_admin), 403)
        assert role_of(group, owner) == "owner" and role_of(group, second_admin) == "admin"

    def test_member_cannot_remove_others(self, group, people):
        _, admin, member, _ = people
        assert_error(self.remove(member, group, admin), 403)
        assert role_of(group, admin) == "admin"

    def test_owner_removes_anyone(self, group, people):
        owner, admin, _, _ = people
        assert self.remove(owner, group, admin).status_code == 204
        assert role_of(group, admin) is None

    def test_owner_must_transfer_before_leaving(self, group, people):
        owner = people[0]
        assert_error(self.remove(owner, group, owner), 409)
        assert role_of(group, owner) == "owner"

    def test_last_member_owner_leaving_dissolves_group(self, people):
        owner = people[0]
        group = group_of(owner)
        assert self.remove(owner, group, owner).status_code == 204
        assert not Group.objects.filter(pk=group.pk).exists()
        assert not Conversation.objects.filter(pk=group.conversation_id).exists()

    def test_removing_a_non_member_is_404(self, group, people):
        assert_error(self.remove(people[0], group, people[3]), 404)


class TestRoles:
    def set_role(self, actor, group, target, role):
        return client_for(actor).patch(f"/v1/groups/g{group.pk}/members/{target.pk}", {"role": role}, format="json")

    def test_owner_promotes_and_demotes(self, group, people):
        owner, admin, member, _ = people
        response = self.set_role(owner, group, member, "admin")
        assert response.status_code == 200 and response.json()["role"] == "admin"
        assert role_of(group, member) == "admin"
        assert ("role_changed", str(member.pk)) in group_updates(admin)
        assert self.set_role(owner, group, admin, "member").json()["role"] == "member"

    @pytest.mark.parametrize("actor", [1, 2])
    def test_only_owner_changes_roles(self, group, people, actor):
        assert_error(self.set_role(people[actor], group, people[2], "admin"), 403)
        assert role_of(group, people[2]) == "member"

    def test_transfer_ownership(self, group, people):
        owner, admin, member, _ = people
        assert self.set_role(owner, group, member, "owner").status_code == 200
        assert role_of(group, member) == "owner" and role_of(group, owner) == "admin"
        info = client_for(owner).get(f"/v1/groups/g{group.pk}").json()
        assert info["owner_id"] == str(member.pk)
        changes = [e["data"] for e in events_of(admin, "group_update") if e["data"]["update_type"] == "role_changed"]
        assert {(c["user_id"], c["role"]) for c in changes} == {(str(owner.pk), "admin"), (str(member.pk), "owner")}
        # The former owner may now leave.
        assert client_for(owner).delete(f"/v1/groups/g{group.pk}/members/{owner.pk}").status_code == 204

    def test_bad_role_and_self(self, group, people):
        owner, _, member, outsider = people
        assert_error(self.set_role(owner, group, member, "king"), 400)
        assert_error(self.set_role(owner, group, owner, "member"), 400)
        assert_error(self.set_role(owner, group, outsider, "admin"), 404)


def test_group_avatar_from_an_uploaded_image(group, people):
    from tests.media.conftest import post_upload
    from tests.media.files import image_bytes

    owner = people[0]
    client = client_for(owner)
    media_id = post_upload(client, image_bytes("PNG"), "image").json()["media_id"]
    response = client.patch(f"/v1/groups/g{group.pk}", {"avatar": media_id}, format="json")
    assert response.status_code == 200 and response.json()["avatar"].startswith("http://testserver/media/avatars/")
    someone_elses = post_upload(client_for(people[1]), image_bytes("PNG"), "image").json()["media_id"]
    assert_error(client.patch(f"/v1/groups/g{group.pk}", {"avatar": someone_elses}, format="json"), 400)


class TestMembershipRate:
    def test_membership_changes_are_limited_per_group(self, group, people, settings):
        settings.RATE_LIMITS_ENABLED = True
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, "group_membership": "4/minute"}
        owner, admin, member, outsider = people
        base, client = f"/v1/groups/g{group.pk}/members", client_for(owner)
        for _ in range(2):  # remove and re-invite: two changes a cycle, each told to every member
            assert client.delete(f"{base}/{member.pk}").status_code == 204
            assert client.post(base, {"user_ids": [str(member.pk)]}, format="json").status_code == 200
        response = client.delete(f"{base}/{member.pk}")
        assert_error(response, 429)
        assert response["Retry-After"]
        assert role_of(group, member) == "member"  # nothing changed, nothing told
        assert_error(client.patch(f"{base}/{admin.pk}", {"role": "member"}, format="json"), 429)
        other = group_of(owner, outsider, name="Elsewhere")  # another group has its own budget
        assert client_for(owner).delete(f"/v1/groups/g{other.pk}/members/{outsider.pk}").status_code == 204
