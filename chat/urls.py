from chat.views import ConversationViewSet, MessageSearchViewSet
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("conversations", ConversationViewSet, basename="conversations")
router.register("messages", MessageSearchViewSet, basename="messages")
urlpatterns = router.urls
