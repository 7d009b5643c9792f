from django.apps import AppConfig


class ImserverConfig(AppConfig):
    name = "imserver"

    def ready(self):
        from imserver import schema  # noqa: F401  (registers the OpenAPI auth extension)
