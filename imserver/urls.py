from django.contrib import admin
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from imserver.api import id_converter
from imserver.views import healthz
from media.storage import THUMBNAIL
from media.views import media_file, public_file

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
    path("", include("media.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("v1/", include(v1)),
    # Uploaded media behind signed URLs; before the public avatar files' catch-all.
    path("media/f/<media_id:media_id>", media_file, name="media-file"),
    path("media/f/<media_id:media_id>/thumbnail", media_file, {"variant": THUMBNAIL}, name="media-thumbnail"),
    path("media/<path:name>", public_file, name="media-public"),
]
