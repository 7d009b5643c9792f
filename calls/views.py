from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from calls import selectors, services
from calls.ice import ice_servers_for
from calls.serializers import CallAcceptIn, CallListOut, CallOut, CallStartIn, IceServersOut, call_data
from imserver.api import page_params, parse_id, stranger_gets_404_first, validated


class CallViewSet(viewsets.ViewSet):
    """Calls (contract 9): signaling over REST; events and relayed ICE candidates over the WebSocket."""

    lookup_url_kwarg = "call_id"
    lookup_value_regex = "call[0-9]{1,18}"

    @property
    def throttle_scope(self):
        if self.request.method != "POST":
            return None
        # Starting a call rings someone's devices: its own, tighter limit.
        return "calls" if self.action == "create" else "write"

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description="Default 20, at most 100."),
            OpenApiParameter("offset", int),
        ],
        responses={200: CallListOut},
    )
    def list(self, request):
        """The caller's call history (calls made or received), newest first."""
        limit, offset = page_params(request, default_limit=20)
        total, calls = selectors.call_history(user=request.user, limit=limit, offset=offset)
        return Response({"total": total, "calls": [call_data(call) for call in calls]})

    @extend_schema(request=CallStartIn, responses={201: CallOut})
    def create(self, request):
        data = validated(CallStartIn, request.data)
        # A malformed id names nobody: the service's lookup answers 404 for it.
        target = parse_id("", data["target_id"])
        call = services.call_start(
            caller=request.user, target_user_id=target, type=data["type"], offer_sdp=data["offer_sdp"]
        )
        return Response(call_data(call), status=status.HTTP_201_CREATED)

    @extend_schema(request=CallAcceptIn, responses={200: CallOut})
    @action(detail=True, methods=["post"])
    def accept(self, request, call_id):
        call_pk = parse_id("call", call_id)
        with stranger_gets_404_first(lambda: selectors.call_for_party(user=request.user, call_id=call_pk)):
            answer_sdp = validated(CallAcceptIn, request.data)["answer_sdp"]
            call = services.call_accept(user=request.user, call_id=call_pk, answer_sdp=answer_sdp)
        return Response(call_data(call))

    @extend_schema(request=None, responses={200: CallOut})
    @action(detail=True, methods=["post"])
    def reject(self, request, call_id):
        return Response(call_data(services.call_reject(user=request.user, call_id=parse_id("call", call_id))))

    @extend_schema(request=None, responses={200: CallOut})
    @action(detail=True, methods=["post"])
    def end(self, request, call_id):
        """Hangs up: ended once connected; while ringing, cancelled (caller) or rejected (callee)."""
        return Response(call_data(services.call_end(user=request.user, call_id=parse_id("call", call_id))))

    @extend_schema(responses={200: IceServersOut})
    @action(detail=False, methods=["get"], url_path="ice-servers")
    def ice_servers(self, request):
        """STUN and TURN servers for the peer connection, with time-limited TURN credentials."""
        return Response(ice_servers_for(user=request.user))
