import pytest

from accounts.models import User
from accounts.services import user_mark_banned
from contacts.models import Contact
from tests.accounts.test_auth import assert_error
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def add(client, user_id, remark=None):
    body = {"user_id": str(user_id)}
    if remark is not None:
        body["remark"] = remark
    return client.post("/v1/contacts", body, format="json")


class TestAdd:
    def test_add_returns_the_contact(self, user_api, user, other_user):
        response = add(user_api, other_user.pk, "Colleague")
        assert response.status_code == 201
        assert response.json() == {
            "user_id": str(other_user.pk),
            "username": "bob",
            "nickname": "Bob",
            "remark": "Colleague",
            "avatar": None,
            "status": "offline",
            "status_message": "",
            "last_online": None,
        }
        assert Contact.objects.filter(owner=user, user=other_user, remark="Colleague").exists()

    def test_contacts_are_one_way(self, user_api, user, other_user):
        add(user_api, other_user.pk)
        assert not Contact.objects.filter(owner=other_user).exists()

    def test_adding_yourself_is_400(self, user_api, user):
        assert_error(add(user_api, user.pk), 400)

    @pytest.mark.parametrize("user_id", ["999999", "abc", "", "c12"])
    def test_unknown_user_is_404_or_400(self, user_api, user_id):
        response = add(user_api, user_id)
        assert_error(response, 400 if user_id == "" else 404)

    def test_banned_user_is_404(self, user_api, other_user):
        user_mark_banned(user=other_user, reason="spam")
        assert_error(add(user_api, other_user.pk), 404)

    def test_duplicate_is_409(self, user_api, other_user):
        add(user_api, other_user.pk)
        assert_error(add(user_api, other_user.pk), 409)

    def test_remark_too_long(self, user_api, other_user):
        assert_error(add(user_api, other_user.pk, "r" * 65), 400)


class TestList:
    def test_lists_with_live_status(self, user_api, user):
        zed = make_user("zed", nickname="Zed")
        amy = make_user("amy", nickname="Amy")
        add(user_api, zed.pk, "Aardvark")
        add(user_api, amy.pk)
        User.objects.filter(pk=amy.pk).update(is_online=True, chosen_status="away")
        body = user_api.get("/v1/contacts").json()
        assert body["total"] == 2
        # Alphabetical by what is shown: the remark, else the nickname.
        assert [c["username"] for c in body["contacts"]] == ["zed", "amy"]
        assert body["contacts"][1]["status"] == "away"
        assert body["contacts"][0]["status"] == "offline"

    def test_pagination_and_defaults(self, user_api, user):
        for i in range(55):
            add(user_api, make_user(f"c{i:02d}").pk)
        first = user_api.get("/v1/contacts").json()
        assert first["total"] == 55 and len(first["contacts"]) == 50
        rest = user_api.get("/v1/contacts", {"offset": 50}).json()
        assert len(rest["contacts"]) == 5
        assert_error(user_api.get("/v1/contacts", {"limit": "many"}), 400)

    def test_empty(self, user_api):
        assert user_api.get("/v1/contacts").json() == {"total": 0, "contacts": []}

    @pytest.mark.parametrize("rows", [1, 50])
    def test_constant_queries(self, user_api, user, rows, django_assert_max_num_queries):
        for i in range(rows):
            Contact.objects.create(owner=user, user=make_user(f"q{i:02d}"))
        # the user (auth), the page with its total, what the caller may see of their presence
        with django_assert_max_num_queries(3):
            assert len(user_api.get("/v1/contacts", {"limit": 100}).json()["contacts"]) == rows

    def test_only_own_contacts(self, user_api, other_user, stranger):
        Contact.objects.create(owner=stranger, user=other_user)
        assert user_api.get("/v1/contacts").json()["total"] == 0


class TestUpdateDelete:
    def test_update_remark(self, user_api, user, other_user):
        add(user_api, other_user.pk, "Colleague")
        response = user_api.patch(f"/v1/contacts/{other_user.pk}", {"remark": "Team Lead"}, format="json")
        assert response.status_code == 200
        assert response.json()["remark"] == "Team Lead"
        assert Contact.objects.get(owner=user).remark == "Team Lead"

    def test_update_unknown_fields_400(self, user_api, other_user):
        add(user_api, other_user.pk)
        assert_error(user_api.patch(f"/v1/contacts/{other_user.pk}", {"nickname": "x"}, format="json"), 400)

    def test_update_non_contact_is_404(self, user_api, other_user):
        assert_error(user_api.patch(f"/v1/contacts/{other_user.pk}", {"remark": "x"}, format="json"), 404)

    def test_delete(self, user_api, user, other_user):
        add(user_api, other_user.pk)
        assert user_api.delete(f"/v1/contacts/{other_user.pk}").status_code == 204
        assert not Contact.objects.filter(owner=user).exists()
        assert_error(user_api.delete(f"/v1/contacts/{other_user.pk}"), 404)

    def test_someone_elses_contact_is_404(self, user_api, other_user, stranger):
        Contact.objects.create(owner=stranger, user=other_user)
        assert_error(user_api.delete(f"/v1/contacts/{other_user.pk}"), 404)
        assert Contact.objects.filter(owner=stranger).exists()

    @pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
    def test_needs_auth(self, api, other_user, method):
        path = "/v1/contacts" if method in ("get", "post") else f"/v1/contacts/{other_user.pk}"
        assert_error(getattr(api, method)(path, {}, format="json"), 401)
