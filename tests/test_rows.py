"""imserver.rows.stored: instances of plain-SQL rows (the token's user, memberships, the rows of the
conversation list and history pages), made without Model.__init__."""

import pytest
from django.db.models.signals import post_init, pre_init

from accounts.models import User
from chat.models import Conversation, Membership, Message
from groups.models import Group
from imserver.rows import stored

pytestmark = pytest.mark.django_db


def test_a_made_instance_is_the_stored_row_and_loads_what_it_was_not_given(user, django_assert_num_queries):
    made_user = stored(User, id=user.pk, username=user.username)
    assert made_user == user and not made_user._state.adding and made_user._state.db == "default"
    with django_assert_num_queries(0):
        assert made_user.username == "alice"
    with django_assert_num_queries(1):  # deferred, as Model.from_db leaves it
        assert made_user.email == user.email
    made_user.nickname = "Ally"
    made_user.save(update_fields=["nickname"])  # an update of the row, never an insert
    user.refresh_from_db()
    assert user.nickname == "Ally" and User.objects.count() == 1


@pytest.mark.parametrize("model", [User, Membership, Conversation, Message, Group])
def test_the_models_it_makes_have_no_init_receivers_it_would_skip(model):
    assert not pre_init.has_listeners(model) and not post_init.has_listeners(model)
