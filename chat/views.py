from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import forwarding, reactions, search, selectors, services
from chat.models import Conversation
from chat.serializers import (
    ConversationCreateIn,
    ConversationListOut,
    ConversationListParams,
    ConversationOut,
    ConversationSettingsIn,
    ForwardIn,
    ForwardOut,
    MarkReadIn,
    MarkReadOut,
    MessageEditIn,
    MessageHistoryParams,
    MessageOut,
    MessagePageOut,
    MessageSearchOut,
    MessageSearchParams,
    MessageSendIn,
    ReactionsOut,
    SentMessageOut,
    UnreadOut,
    conversation_data,
    message_data,
    messages_across_conversations_data,
    messages_data,
)
from groups.services import group_create
from imserver.api import format_id, limit_param, page_params, parse_id, stranger_gets_404_first, validated


def _message_id(value, param):
    if value is None:
        return None
    pk = parse_id("m", value)
    if pk is None:
        raise ValidationError({param: ["Must be a message id."]})
    return pk


MESSAGE_PATH = r"messages/(?P<message_id>m[0-9]{1,18})"


class ConversationViewSet(viewsets.ViewSet):
    """Conversations and their messages (contract 5)."""

    lookup_url_kwarg = "conversation_id"
    lookup_value_regex = "c[0-9]{1,18}"
    throttle_scope = "write"

    def get_throttles(self):
        return super().get_throttles() if self.request.method != "GET" else []

    @extend_schema(
        parameters=[
            OpenApiParameter("type", str, enum=["private", "group", "all"]),
            OpenApiParameter("include_hidden", bool, description="Also list hidden conversations."),
            OpenApiParameter("limit", int, description="Default 20, at most 100."),
            OpenApiParameter("offset", int),
        ],
        responses={200: ConversationListOut},
    )
    def list(self, request):
        params = validated(ConversationListParams, request.query_params)
        limit, offset = page_params(request, default_limit=20)
        total, rows = selectors.conversation_list(
            user=request.user,
            type=params.get("type"),
            include_hidden=params["include_hidden"],
            limit=limit,
            offset=offset,
        )
        return Response({"total": total, "conversations": [conversation_data(row) for row in rows]})

    @extend_schema(responses={200: ConversationOut})
    def retrieve(self, request, conversation_id):
        membership = selectors.conversation_item(user=request.user, conversation_id=parse_id("c", conversation_id))
        return Response(conversation_data(membership))

    @extend_schema(
        request=ConversationCreateIn,
        responses={
            201: ConversationOut,
            200: OpenApiResponse(ConversationOut, description="The private conversation already existed."),
        },
    )
    def create(self, request):
        data = validated(ConversationCreateIn, request.data)
        if data["type"] == Conversation.Type.PRIVATE:
            target = parse_id("", data["target_id"])  # None (malformed) is a 404 in the service's lookup
            conversation, created = services.private_conversation_open(user=request.user, target_user_id=target)
        else:
            conversation, created = (
                group_create(owner=request.user, name=data["name"], member_ids=data.get("members", [])).conversation,
                True,
            )
        membership = selectors.conversation_item(user=request.user, conversation_id=conversation.pk)
        return Response(
            conversation_data(membership), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(
        methods=["GET"],
        parameters=[
            OpenApiParameter("limit", int, description="Default 50, at most 100."),
            OpenApiParameter("before", str, description="A message id: the messages just older than it."),
            OpenApiParameter("after", str, description="A message id: the messages just newer than it."),
        ],
        responses={200: MessagePageOut},
    )
    @extend_schema(
        methods=["POST"],
        request=MessageSendIn,
        responses={
            201: SentMessageOut,
            200: OpenApiResponse(SentMessageOut, description="Same sender and temp_id: the message sent before."),
        },
    )
    @action(detail=True, methods=["get", "post"], throttle_scope="send")
    def messages(self, request, conversation_id):
        conversation_pk = parse_id("c", conversation_id)
        if request.method == "POST":
            return self._send(request, conversation_pk)  # the service checks membership under its lock
        with stranger_gets_404_first(
            lambda: selectors.membership_for(user=request.user, conversation_id=conversation_pk)
        ):
            params = validated(MessageHistoryParams, request.query_params)
            limit = limit_param(request, default_limit=50)
            window = selectors.history_window(
                user=request.user,
                conversation_id=conversation_pk,
                before=_message_id(params.get("before"), "before"),
                after=_message_id(params.get("after"), "after"),
            )
        messages, has_more = selectors.message_page(window=window, limit=limit)
        return Response(
            {
                "conversation_id": conversation_id,
                "messages": messages_data(messages, window.status_of, selectors.page_reactions(messages)),
                "has_more": has_more,
            }
        )

    def _send(self, request, conversation_pk):
        with stranger_gets_404_first(
            lambda: selectors.membership_for(user=request.user, conversation_id=conversation_pk)
        ):
            data = validated(MessageSendIn, request.data)
            data["reply_to"] = _message_id(data.get("reply_to"), "reply_to")
            message, created = services.message_send(sender=request.user, conversation_id=conversation_pk, **data)
        if created and message.reply_to_id is None:
            body = message_data(message)  # just stored: "sent", no reactions, no original to look at
        else:  # sent before (it may have been read and reacted to since), or a reply
            reactions = {} if created else selectors.reactions_of([message.pk], viewer_id=request.user.pk)
            body = messages_data([message], selectors.read_horizon(conversation_pk), reactions)[0]
        body["temp_id"] = message.temp_id
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(operation_id="conversations_messages_edit", request=MessageEditIn, responses={200: MessageOut})
    @action(detail=True, methods=["patch"], url_path=MESSAGE_PATH, throttle_scope="write")
    def message(self, request, conversation_id, message_id):
        """Edits a message: its text, or a media message's caption (contract 15)."""
        conversation_pk = parse_id("c", conversation_id)
        with stranger_gets_404_first(
            lambda: selectors.membership_for(user=request.user, conversation_id=conversation_pk)
        ):
            changes = validated(MessageEditIn, request.data)
            message = services.message_edit(
                user=request.user, conversation_id=conversation_pk, message_id=parse_id("m", message_id), **changes
            )
        reactions = selectors.reactions_of([message.pk], viewer_id=request.user.pk)
        return Response(messages_data([message], selectors.read_horizon(conversation_pk), reactions)[0])

    @extend_schema(operation_id="conversations_messages_hide", request=None, responses={204: None})
    @message.mapping.delete
    def message_hide(self, request, conversation_id, message_id):
        """Deletes a message for the caller only, on all their devices (contract 15)."""
        services.message_hide(
            user=request.user, conversation_id=parse_id("c", conversation_id), message_id=parse_id("m", message_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={200: MessageOut})
    @action(detail=True, methods=["post"], url_path=MESSAGE_PATH + "/recall", throttle_scope="write")
    def recall(self, request, conversation_id, message_id):
        """Recalls a message for everyone; returns it removed (contract 15)."""
        message = services.message_recall(
            user=request.user, conversation_id=parse_id("c", conversation_id), message_id=parse_id("m", message_id)
        )
        return Response(message_data(message))

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"], url_path="clear", throttle_scope="write")
    def clear(self, request, conversation_id):
        """Hides every message up to now for the caller, on all their devices (contract 15)."""
        services.conversation_clear(user=request.user, conversation_id=parse_id("c", conversation_id))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=ConversationSettingsIn, responses={200: ConversationOut})
    @action(detail=True, methods=["patch"], url_path="settings", throttle_scope="write")
    def conversation_settings(self, request, conversation_id):
        """The caller's own mute, notify, pin and hide settings of the conversation (contract 17)."""
        conversation_pk = parse_id("c", conversation_id)
        with stranger_gets_404_first(
            lambda: selectors.membership_for(user=request.user, conversation_id=conversation_pk)
        ):
            changes = validated(ConversationSettingsIn, request.data)
            item = services.conversation_settings_update(user=request.user, conversation_id=conversation_pk, **changes)
        return Response(conversation_data(item))

    @extend_schema(request=MarkReadIn, responses={200: MarkReadOut})
    @action(detail=True, methods=["post"], url_path="read", throttle_scope="write")
    def read(self, request, conversation_id):
        """Moves the read pointer (the REST twin of the WebSocket message_read frame)."""
        conversation_pk = parse_id("c", conversation_id)
        with stranger_gets_404_first(
            lambda: selectors.membership_for(user=request.user, conversation_id=conversation_pk)
        ):
            message_pk = _message_id(validated(MarkReadIn, request.data)["message_id"], "message_id")
            membership = services.conversation_mark_read(
                user=request.user, conversation_id=conversation_pk, message_id=message_pk
            )
        item = selectors.conversation_item(user=request.user, conversation_id=conversation_pk)
        last_read = selectors.message_id_at(conversation_pk, membership.last_read_seq)
        return Response(
            {
                "conversation_id": conversation_id,
                "last_read_message_id": format_id("m", last_read),
                "unread_count": item.unread_count,
            }
        )

    @extend_schema(
        parameters=[OpenApiParameter("emoji", str, OpenApiParameter.PATH, description="One emoji, URL-encoded.")],
        request=None,
        responses={200: ReactionsOut},
    )
    @action(
        detail=True,
        methods=["put", "delete"],
        url_path=r"messages/(?P<message_id>m[0-9]{1,18})/reactions/(?P<emoji>[^/]+)",
        throttle_scope="write",
    )
    def reactions(self, request, conversation_id, message_id, emoji):
        """Adds (PUT, idempotent) or takes back (DELETE) the caller's emoji on a message (contract 18)."""
        conversation_pk = parse_id("c", conversation_id)
        change = reactions.reaction_add if request.method == "PUT" else reactions.reaction_remove
        with stranger_gets_404_first(
            lambda: selectors.membership_for(user=request.user, conversation_id=conversation_pk)
        ):
            summary = change(
                user=request.user,
                conversation_id=conversation_pk,
                message_id=parse_id("m", message_id),
                emoji=reactions.emoji_valid(emoji),
            )
        return Response({"reactions": summary})


class MessageForwardView(APIView):
    """Forwards messages into conversations (contract 18)."""

    throttle_scope = "send"

    @extend_schema(
        request=ForwardIn,
        responses={
            201: ForwardOut,
            200: OpenApiResponse(ForwardOut, description="Same forwarder and temp_id: the copies made before."),
        },
    )
    def post(self, request):
        data = validated(ForwardIn, request.data)
        copies, created = forwarding.messages_forward(
            forwarder=request.user,
            message_ids=[parse_id("m", value) for value in data["message_ids"]],
            conversation_ids=[parse_id("c", value) for value in data["conversation_ids"]],
            temp_id=data.get("temp_id"),
        )
        if created:
            body = [message_data(copy) for copy in copies]  # just stored: "sent", no reactions
        else:  # made before: they may have been read and reacted to since
            horizons = selectors.read_horizons({copy.conversation_id for copy in copies})
            found = selectors.reactions_of([copy.pk for copy in copies], viewer_id=request.user.pk)
            body = messages_across_conversations_data(copies, horizons, found)
        for copy, item in zip(copies, body, strict=True):
            item["temp_id"] = copy.temp_id
        return Response({"messages": body}, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MessageSearchViewSet(viewsets.ViewSet):
    """Search in the caller's messages (contract 20)."""

    throttle_scope = "search"

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, required=True, description="1-100 characters."),
            OpenApiParameter("conversation_id", str, description="Only this conversation (one of the caller's)."),
            OpenApiParameter("sender_id", str, description="Only messages from this user."),
            OpenApiParameter("limit", int, description="Default 20, at most 100."),
            OpenApiParameter("offset", int),
        ],
        responses={200: MessageSearchOut},
    )
    @action(detail=False, methods=["get"])
    def search(self, request):
        params = validated(MessageSearchParams, request.query_params)
        limit, offset = page_params(request, default_limit=20)
        conversation_id = None
        if "conversation_id" in params:
            conversation_id = parse_id("c", params["conversation_id"])
            if conversation_id is None:
                raise NotFound("Conversation not found")
            selectors.membership_for(user=request.user, conversation_id=conversation_id)
        sender_id = None
        if "sender_id" in params:
            sender_id = parse_id("", params["sender_id"])
            if sender_id is None:
                raise ValidationError({"sender_id": ["Must be a user id."]})
        total, messages = search.messages_search(
            user=request.user,
            query=params["q"],
            conversation_id=conversation_id,
            sender_id=sender_id,
            limit=limit,
            offset=offset,
        )
        horizons = selectors.read_horizons({message.conversation_id for message in messages})
        reactions = selectors.page_reactions(messages)
        return Response({"total": total, "messages": messages_across_conversations_data(messages, horizons, reactions)})


class UnreadView(APIView):
    """What the caller has not read, on every device (contract 13); `badge` is the push badge."""

    @extend_schema(responses={200: UnreadOut})
    def get(self, request):
        return Response(selectors.unread_summaries([request.user.pk])[request.user.pk])
