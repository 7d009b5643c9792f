"""Contract 23: input a field or the parser cannot hold is a 400, never a 500."""

import pytest

from tests.accounts.test_auth import assert_error

pytestmark = pytest.mark.django_db


def nested(depth):
    return "[" * depth + "]" * depth


class TestJsonNesting:
    @pytest.mark.parametrize("depth", [101, 5000, 200_000])
    def test_deeper_than_100_levels_is_400_also_unauthenticated(self, api, depth):
        response = api.generic("POST", "/v1/auth/login", nested(depth), content_type="application/json")
        assert "nested deeper than 100" in assert_error(response, 400)["details"]

    def test_deeper_than_100_levels_is_400_authenticated(self, user_api):
        body = '{"nickname": ' + nested(150) + "}"
        response = user_api.generic("PATCH", "/v1/user/me", body, content_type="application/json")
        assert_error(response, 400)

    def test_100_levels_are_parsed(self, api):
        body = '{"username": "alice", "password": ' + nested(99) + "}"
        response = api.generic("POST", "/v1/auth/login", body, content_type="application/json")
        assert "nested" not in assert_error(response, 400)["details"]  # judged as a login, not refused


class TestOffsets:
    @pytest.mark.parametrize("offset", [2**63, 2**63 - 1, 10**18, "9" * 5000])
    def test_an_offset_no_database_can_hold_is_400(self, user_api, offset):
        assert_error(user_api.get(f"/v1/users/search?query=a&offset={offset}"), 400)

    def test_a_large_offset_that_fits_is_an_empty_page(self, user_api):
        response = user_api.get(f"/v1/users/search?query=a&offset={10**18 - 1}")
        assert response.status_code == 200 and response.json()["users"] == []
