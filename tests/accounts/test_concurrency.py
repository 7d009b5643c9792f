import threading
from unittest import mock

import pytest
from django.db import connections
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import User
from accounts.services import token_refresh, user_password_set
from accounts.tokens import token_pair_for
from tests.conftest import is_postgres, make_user

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not is_postgres(), reason="row locking is what is under test: needs DATABASE_URL=postgres://"),
]


def _refresh(refresh, barrier, wins, losses):
    try:
        barrier.wait()
        wins.append(token_refresh(refresh_token=refresh))
    except AuthenticationFailed:
        losses.append(1)
    finally:
        connections.close_all()


def test_parallel_refreshes_with_one_token_exactly_one_wins():
    user = make_user("alice")
    for _ in range(5):
        refresh = token_pair_for(user)["refresh_token"]
        barrier, wins, losses = threading.Barrier(6), [], []
        threads = [threading.Thread(target=_refresh, args=(refresh, barrier, wins, losses)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert (len(wins), len(losses)) == (1, 5)


def test_a_password_change_during_a_refresh_waits_and_revokes_the_new_pair():
    user = make_user("alice")
    refresh = token_pair_for(user)["refresh_token"]
    issuing, changed, seen = threading.Event(), threading.Event(), {}

    def issue_slowly(user, device_id=None):
        issuing.set()
        # Holding the user's row, the refresh keeps the change waiting; without it, it lands here.
        seen["changed_before_issue"] = changed.wait(timeout=1)
        return token_pair_for(user, device_id)

    def refresh_in_thread():
        try:
            seen["pair"] = token_refresh(refresh_token=refresh)
        finally:
            connections.close_all()

    def change_in_thread():
        try:
            user_password_set(user=User.objects.get(pk=user.pk), password="An0ther-secret!")
            changed.set()
        finally:
            connections.close_all()

    with mock.patch("accounts.services.tokens.token_pair_for", issue_slowly):
        refreshing = threading.Thread(target=refresh_in_thread)
        refreshing.start()
        assert issuing.wait(timeout=5)
        changing = threading.Thread(target=change_in_thread)
        changing.start()
        refreshing.join()
        changing.join()
    assert seen["changed_before_issue"] is False
    new_jti = RefreshToken(seen["pair"]["refresh_token"], verify=False)["jti"]
    assert BlacklistedToken.objects.filter(token__jti=new_jti).exists()
    with pytest.raises(AuthenticationFailed):
        token_refresh(refresh_token=seen["pair"]["refresh_token"])
