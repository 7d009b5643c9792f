"""ASGI entry point: Django for HTTP, the realtime consumer for WebSockets at /ws and /v1/ws."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imserver.settings")

from imserver.asgi_http import get_threaded_asgi_application

django_application = get_threaded_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)
from django.urls import re_path  # noqa: E402

from imserver.daphne_close_codes import allow_protocol_close_codes  # noqa: E402
from imserver.daphne_limits import bound_connections, bound_request_bodies, bound_socket_buffers  # noqa: E402
from imserver.gc_tuning import tune  # noqa: E402
from imserver.logs import redact_daphne_access_log  # noqa: E402
from realtime.background import BackgroundJobsMiddleware  # noqa: E402
from realtime.consumers import EventConsumer  # noqa: E402

application = BackgroundJobsMiddleware(
    ProtocolTypeRouter(
        {
            "http": django_application,
            "websocket": URLRouter([re_path(r"^(?:v1/)?ws/?$", EventConsumer.as_asgi())]),
        }
    )
)
tune()
allow_protocol_close_codes()
bound_socket_buffers()
bound_request_bodies()
bound_connections()
redact_daphne_access_log()
