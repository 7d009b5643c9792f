from django.urls import re_path

from media.views import MediaUploadView

urlpatterns = [
    re_path(r"^media/upload/?$", MediaUploadView.as_view(), name="media-upload"),
]
