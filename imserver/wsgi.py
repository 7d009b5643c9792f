"""WSGI entry point, for serving the REST API with a WSGI server (docs/deployment.md)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imserver.settings")
application = get_wsgi_application()

from imserver.gc_tuning import tune  # noqa: E402

tune()
