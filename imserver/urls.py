from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerView

from imserver.capabilities import CapabilitiesView
from imserver.metrics import metrics_view
from imserver.views import SchemaView, healthz
from media.storage import THUMBNAIL
from media.views import media_file, public_file

# Django tries the patterns in order, each failing one at a cost: the routes of every request
# of a chatting app (sending, history, the conversation list) come first. No two apps' patterns
# match the same path.
v1 = [
    path("", include("chat.urls")),
    path("", include("accounts.urls")),
    path("", include("contacts.urls")),
    path("", include("groups.urls")),
    path("", include("media.urls")),
    path("", include("calls.urls")),
    path("", include("realtime.urls")),
    path("", include("moderation.urls")),
    re_path(r"^capabilities/?$", CapabilitiesView.as_view(), name="capabilities"),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("v1/", include(v1)),
    # Uploaded media behind signed URLs; before the public avatar files' catch-all.
    re_path(r"^media/f/media(?P<media_id>[0-9]{1,18})$", media_file, name="media-file"),
    re_path(
        r"^media/f/media(?P<media_id>[0-9]{1,18})/thumbnail$",
        media_file,
        {"variant": THUMBNAIL},
        name="media-thumbnail",
    ),
    path("media/<path:name>", public_file, name="media-public"),
]
