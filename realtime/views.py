import orjson
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from imserver.api import Gone, limit_param
from realtime import selectors


class EventFrameOut(serializers.Serializer):
    id = serializers.CharField(help_text="Orders this user's events; resume after it with since=<id>.")
    type = serializers.CharField()
    data = serializers.DictField()


class SyncOut(serializers.Serializer):
    events = EventFrameOut(many=True)
    has_more = serializers.BooleanField()


class SyncViewSet(viewsets.ViewSet):
    """The events a client missed, for clients that poll (contract 7.1)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("since", str, required=True, description="The last event id seen (0: from the start)."),
            OpenApiParameter("limit", int, description="Default 100, at most 100."),
        ],
        responses={200: SyncOut},
    )
    def list(self, request):
        limit = limit_param(request, default_limit=100)
        since = request.query_params.get("since")
        if since is None:
            raise ValidationError({"since": ["This parameter is required."]})
        try:
            after = selectors.resume_position(user_id=request.user.pk, since=since)
        except selectors.ResumeError as exc:
            if exc.code == 410:
                raise Gone(str(exc)) from None
            raise ValidationError({"since": [str(exc)]}) from None
        rows = selectors.events_after(user_id=request.user.pk, after=after, limit=limit + 1)
        frames = [{"id": str(seq), "type": type, "data": orjson.loads(data)} for seq, type, data in rows[:limit]]
        return Response({"events": frames, "has_more": len(rows) > limit})
