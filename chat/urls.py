from chat.views import ConversationViewSet
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("conversations", ConversationViewSet, basename="conversations")
urlpatterns = router.urls
