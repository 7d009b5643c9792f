from django.apps import AppConfig


class CallsConfig(AppConfig):
    name = "calls"

    def ready(self):
        from calls import jobs  # noqa: F401  (registers the ring timeout with realtime.background)
