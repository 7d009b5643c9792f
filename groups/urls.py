from groups.views import GroupViewSet
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("groups", GroupViewSet, basename="groups")
urlpatterns = router.urls
