from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self):
        from realtime import presence  # noqa: F401  (registers its periodic jobs)
