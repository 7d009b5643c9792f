from imserver.routers import ApiRouter
from moderation.views import ReportViewSet

router = ApiRouter()
router.register("reports", ReportViewSet, basename="reports")
urlpatterns = router.urls
