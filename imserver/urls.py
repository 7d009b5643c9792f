from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from imserver.views import healthz
from media.views import public_file

v1 = [
    path("", include("accounts.urls")),
    path("", include("contacts.urls")),
    path("", include("chat.urls")),
    path("", include("groups.urls")),
    path("", include("realtime.urls")),
    path("", include("moderation.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("v1/", include(v1)),
    path("media/<path:name>", public_file, name="media-public"),
]
