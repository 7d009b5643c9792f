from django.urls import re_path

from chat.views import ConversationViewSet, MessageForwardView, MessageSearchViewSet, UnreadView
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("conversations", ConversationViewSet, basename="conversations")
router.register("messages", MessageSearchViewSet, basename="messages")
urlpatterns = [
    re_path(r"^user/me/unread/?$", UnreadView.as_view(), name="unread"),
    re_path(r"^messages/forward/?$", MessageForwardView.as_view(), name="messages-forward"),
    *router.urls,
]
