from django.urls import re_path

from accounts.views import AuthViewSet, DeviceViewSet, MeViewSet, UserViewSet
from imserver.routers import ApiRouter

router = ApiRouter()
router.register("auth", AuthViewSet, basename="auth")
router.register("users", UserViewSet, basename="users")
router.register("devices", DeviceViewSet, basename="devices")

urlpatterns = [
    re_path(
        r"^user/me/?$",
        MeViewSet.as_view({"get": "retrieve", "patch": "partial_update", "delete": "destroy"}),
        name="me",
    ),
    re_path(r"^user/me/email/confirm/?$", MeViewSet.as_view({"post": "email_confirm"}), name="me-email-confirm"),
    re_path(
        r"^user/me/email/confirm/resend/?$",
        MeViewSet.as_view({"post": "email_confirm_resend"}),
        name="me-email-confirm-resend",
    ),
    *router.urls,
]
