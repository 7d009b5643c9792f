"""WebSocket client frames owned by calls (dispatched by realtime.consumers)."""

from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from accounts.models import User
from calls.services import call_ice_candidate_relay
from imserver.api import StrictCharField, parse_id, validated


class IceCandidateIn(serializers.Serializer):
    call_id = StrictCharField(max_length=32)
    # "" is trickle ICE's end-of-candidates: relayed like any candidate.
    candidate = StrictCharField(allow_blank=True, trim_whitespace=False)
    sdp_mid = StrictCharField(required=False, allow_null=True, trim_whitespace=False)
    sdp_mline_index = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=65535)


def ice_candidate(user_id, data):
    values = validated(IceCandidateIn, data)
    call_id = parse_id("call", values.pop("call_id"))
    if call_id is None:
        raise ValidationError({"call_id": ["Must be a call id like call12."]})
    call_ice_candidate_relay(user=User(pk=user_id), call_id=call_id, **values)
