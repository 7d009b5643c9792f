from contacts.views import ContactViewSet
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("contacts", ContactViewSet, basename="contacts")
urlpatterns = router.urls
