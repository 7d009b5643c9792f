from django.urls import re_path

from realtime.views import SyncViewSet

urlpatterns = [re_path(r"^sync/?$", SyncViewSet.as_view({"get": "list"}), name="sync")]
