from django.contrib import admin
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from imserver.api import id_converter
from imserver.views import healthz
from media.views import public_file

for prefix, name in (
    ("c", "conversation"),
    ("m", "message"),
    ("g", "group"),
    ("media", "media"),
    ("call", "call"),
    ("", "user"),
):
    register_converter(id_converter(prefix), f"{name}_id")

v1 = [
    path("", include("accounts.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("v1/", include(v1)),
    path("media/<path:name>", public_file, name="media-public"),
]
