from django.urls import re_path

from chat.views import ConversationViewSet, MessageSearchViewSet, UnreadView
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("conversations", ConversationViewSet, basename="conversations")
router.register("messages", MessageSearchViewSet, basename="messages")
urlpatterns = [re_path(r"^user/me/unread/?$", UnreadView.as_view(), name="unread"), *router.urls]
