import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView

from realtime.bus import bus_ping

logger = logging.getLogger(__name__)


@csrf_exempt  # no unsafe method is served: a POST is a 405, not a CSRF 403
@require_safe
def healthz(request):
    """200 when the database and the realtime bus answer, else 503 (contract 1)."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("health: database unreachable: %s", exc)
        checks["database"] = "unavailable"
    try:
        bus_ping()
        checks["realtime"] = "ok"
    except Exception as exc:
        logger.warning("health: realtime bus unreachable: %s", exc)
        checks["realtime"] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "checks": checks}
    if not healthy:
        body = {"code": 503, "message": "Service unavailable", "details": "A dependency is unreachable", **body}
    return JsonResponse(body, status=200 if healthy else 503)


class SchemaView(SpectacularAPIView):
    """/v1/schema/ in OpenAPI 3.1; `?version=3.0` renders 3.0.3 (nullable: true), which common
    Dart generators read correctly where they mishandle 3.1's nullability."""

    @extend_schema(exclude=True)
    def get(self, request, *args, **kwargs):
        if request.GET.get("version") == "3.0":
            self.custom_settings = {"OAS_VERSION": "3.0.3"}
        return super().get(request, *args, **kwargs)

    def _get_version_parameter(self, request):
        return None  # ?version picks the OpenAPI rendering here, not an API version
