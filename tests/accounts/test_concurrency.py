import threading

import pytest
from django.db import connections
from rest_framework.exceptions import AuthenticationFailed

from accounts.services import token_refresh
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
