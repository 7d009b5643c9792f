from calls.views import CallViewSet
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("calls", CallViewSet, basename="calls")
urlpatterns = router.urls
