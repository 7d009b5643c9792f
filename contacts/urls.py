from django.urls import re_path

from contacts.views import BlockViewSet, ContactViewSet, PrivacySettingsView
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("contacts", ContactViewSet, basename="contacts")
router.register("blocks", BlockViewSet, basename="blocks")
urlpatterns = [
    re_path(
        r"^user/me/settings/?$",
        PrivacySettingsView.as_view({"get": "retrieve", "patch": "partial_update"}),
        name="privacy-settings",
    ),
    *router.urls,
]
