"""Moderation reads."""

from rest_framework.exceptions import NotFound

from accounts.selectors import visible_users
from chat.models import Membership, Message
from imserver.api import parse_id
from moderation.models import TargetType


def report_target_id(*, reporter, target_type, raw_id):
    """The id of the target named by raw_id ("m12", "7", "g3"), if the reporter can see it:
    a message of one of their conversations, a visible user, a group they are in. Else 404."""
    if target_type == TargetType.MESSAGE:
        pk = parse_id("m", raw_id)
        visible = Message.objects.filter(pk=pk, conversation__memberships__user=reporter)
    elif target_type == TargetType.USER:
        pk = parse_id("", raw_id)
        visible = visible_users().filter(pk=pk)
    else:
        pk = parse_id("g", raw_id)
        visible = Membership.objects.filter(conversation__group__pk=pk, user=reporter)
    if pk is None or not visible.exists():
        raise NotFound(f"{target_type.capitalize()} not found")
    return pk
